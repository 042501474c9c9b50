"""Sentence templates that render world facts as English-like prose.

Kept apart from the renderer so the wording can grow without touching logic, and so
tests and downstream tasks can inspect the surface forms. Every template states
only what its fields say. Templates begin in lower case unless they begin with a
field; the renderer capitalises the finished sentence.

Fields: {s} the entity the sentence is about (name, description or pronoun: a
pronoun only where {s} opens the sentence), {name} the same entity never as a
pronoun, {poss}/{obj} its possessive/object pronoun, {be}/{was}/{has} verbs that
agree with {s}; {v}/{a_v} an attribute value without/with an article; {o} the
other entity, {olist} several others ("A, B and C"); {year}/{age} the year of a
founding or making and the founder's or maker's age then; {spouse} husband, wife
or spouse; {kilograms} the unit agreeing with the weight. Openings use attribute
names directly ({birth_year}, {a_occupation}, ...).
"""

from __future__ import annotations

OPENINGS = {
    "person": (
        "{name} was {a_occupation} born in {birth_year}.",
        "{name}, born in {birth_year}, was {a_occupation} from {home_region}.",
        "{name} was {a_trait} {occupation} from {home_region}.",
        "born in {birth_year}, {name} became known as {a_occupation}.",
        "{name} (born {birth_year}) was {a_occupation} with roots in {home_region}.",
    ),
    "place": (
        "{name} is {a_place_type} in {region}.",
        "{name} is {a_climate} {place_type} in the region of {region}.",
        "located in {region}, {name} is {a_place_type} with {population} inhabitants.",
        "{name} is {a_place_type} of {population} people.",
    ),
    "organisation": (
        "{name} is {a_org_type} working in {field}.",
        "founded in {founded_year}, {name} is {a_org_type} devoted to {field}.",
        "{name} is {a_org_type} with {employees} employees.",
        "{name} is {a_org_type} known for its work in {field}.",
    ),
    "object": (
        "{name} is {a_colour} {object_type} made of {material}.",
        "{name} is {a_material} {object_type} dating from {year_made}.",
        "made in {year_made}, {name} is {a_object_type} of {material}.",
        "{name} is {a_object_type} weighing {weight_kg} {kilograms}.",
    ),
}

ATTRIBUTES = {
    "birth_year": (
        "{s} {was} born in {v}.",
        "{poss} year of birth was {v}.",
        "records give {v} as {poss} year of birth.",
        "{name} was born in the year {v}.",
        "{s} came into the world in {v}.",
    ),
    "occupation": (
        "{s} worked as {a_v}.",
        "by profession, {s} {was} {a_v}.",
        "{s} made {poss} living as {a_v}.",
        "{s} {was} {a_v} by trade.",
        "{name} was trained as {a_v}.",
    ),
    "home_region": (
        "{s} came from {v}.",
        "{s} {was} a native of {v}.",
        "{poss} family roots lay in {v}.",
        "{name} was originally from {v}.",
    ),
    "trait": (
        "{s} {was} known for being {v}.",
        "contemporaries described {name} as {v}.",
        "{s} had a reputation for being {v}.",
        "those who knew {obj} remembered {obj} as {v}.",
        "{name} was, by all accounts, {a_v} person.",
    ),
    "place_type": (
        "{s} is {a_v}.",
        "{name} is classed as {a_v}.",
        "geographically, {s} is {a_v}.",
        "{s} is counted as {a_v}.",
    ),
    "population": (
        "{s} has a population of {v}.",
        "{v} people live in {name}.",
        "the population of {name} stands at {v}.",
        "{s} is home to {v} inhabitants.",
        "{name} has {v} residents.",
    ),
    "climate": (
        "{s} has {a_v} climate.",
        "the climate of {name} is {v}.",
        "{s} is known for its {v} climate.",
        "{name} lies in a zone of {v} climate.",
    ),
    "region": (
        "{s} lies in {v}.",
        "{s} is situated in the region of {v}.",
        "{name} belongs to the region of {v}.",
        "{s} is found in the region of {v}.",
    ),
    "founded_year": (
        "{s} was founded in {v}.",
        "{s} dates back to {v}.",
        "the origins of {name} go back to {v}.",
        "{name} was established in {v}.",
        "the history of {name} begins in {v}.",
    ),
    "org_type": (
        "{s} is {a_v}.",
        "{name} operates as {a_v}.",
        "{s} was set up as {a_v}.",
        "{name} is organised as {a_v}.",
    ),
    "field": (
        "{s} specialises in {v}.",
        "{s} works in the field of {v}.",
        "the main focus of {name} is {v}.",
        "{name} is active in {v}.",
    ),
    "employees": (
        "{s} employs {v} people.",
        "{s} has a staff of {v}.",
        "the workforce of {name} numbers {v}.",
        "{v} people work for {name}.",
    ),
    "object_type": (
        "{s} is {a_v}.",
        "{name} is classified as {a_v}.",
        "in form, {name} is {a_v}.",
    ),
    "material": (
        "{s} is made of {v}.",
        "{s} was crafted from {v}.",
        "the main material of {name} is {v}.",
        "{name} is built from {v}.",
    ),
    "colour": (
        "{s} is {v} in colour.",
        "{s} has {a_v} finish.",
        "the colour of {name} is {v}.",
        "{name} is mostly {v}.",
    ),
    "weight_kg": (
        "{s} weighs {v} {kilograms}.",
        "{s} has a weight of {v} kg.",
        "the weight of {name} is {v} {kilograms}.",
        "{name} tips the scales at {v} {kilograms}.",
    ),
    "year_made": (
        "{s} was made in {v}.",
        "{s} dates from {v}.",
        "{s} was completed in {v}.",
        "{name} was finished in the year {v}.",
    ),
}

# predicate -> role -> templates. "fwd": about the subject, {o} the object; "inv":
# about the object, {o} the subject; "*_many": one sentence for several others.
# Symmetric predicates only have the "fwd" roles.
RELATIONS = {
    "born_in": {
        "fwd": (
            "{s} {was} born in {o}.",
            "{poss} birthplace was {o}.",
            "{o} is where {name} was born.",
            "{s} came into the world in {o}.",
        ),
        "inv": (
            "{o} was born in {name}.",
            "{s} is the birthplace of {o}.",
            "{s} is where {o} was born.",
            "among the natives of {name} is {o}.",
        ),
        "inv_many": (
            "{s} is the birthplace of people including {olist}.",
            "people born in {name} include {olist}.",
            "among those born in {name} are {olist}.",
        ),
    },
    "lives_in": {
        "fwd": (
            "{s} made {poss} home in {o}.",
            "{s} settled in {o}.",
            "{poss} home was in {o}.",
            "{s} {was} a resident of {o}.",
        ),
        "inv": (
            "{o} made a home in {name}.",
            "{s} was home to {o}.",
            "{o} lived in {name}.",
            "{s} counts {o} among its residents.",
        ),
        "inv_many": (
            "residents of {name} have included {olist}.",
            "{s} has been home to residents such as {olist}.",
            "{olist} lived in {name}.",
        ),
    },
    "works_for": {
        "fwd": (
            "{s} worked for {o}.",
            "{s} {was} employed by {o}.",
            "{s} held a position at {o}.",
            "{o} employed {name}.",
            "{s} joined the staff of {o}.",
        ),
        "inv": (
            "{o} worked for {name}.",
            "{s} employed {o}.",
            "{s} counted {o} among its staff.",
            "{o} held a position at {name}.",
        ),
        "inv_many": (
            "notable staff of {name} have included {olist}.",
            "{s} has employed people such as {olist}.",
            "{olist} worked for {name}.",
            "among the employees of {name} were {olist}.",
        ),
    },
    "founded": {
        "fwd": (
            "{s} founded {o} in {year}.",
            "in {year}, {s} established {o}.",
            "{s} founded {o} at the age of {age}.",
            "{o} was founded by {name} in {year}.",
            "{s} {was} behind the founding of {o} in {year}.",
        ),
        "fwd_many": (
            "{s} founded organisations including {olist}.",
            "the organisations founded by {name} include {olist}.",
            "{name} was a founder of {olist}.",
        ),
        "inv": (
            "{s} was founded by {o} in {year}.",
            "{o} established {name} in {year}.",
            "{o} founded {name} at the age of {age}.",
            "{s} was established by {o} in {year}.",
        ),
        "inv_many": (
            "{s} was founded in {year} by {olist}.",
            "{olist} established {name} together in {year}.",
            "the founders of {name} were {olist}.",
        ),
    },
    "headquartered_in": {
        "fwd": (
            "{s} is headquartered in {o}.",
            "{s} has its headquarters in {o}.",
            "the headquarters of {name} are in {o}.",
            "{s} is based in {o}.",
        ),
        "inv": (
            "{o} is headquartered in {name}.",
            "{s} is home to the headquarters of {o}.",
            "{o} has its headquarters in {name}.",
            "{o} is based in {name}.",
        ),
        "inv_many": (
            "{s} is the base of {olist}.",
            "{s} hosts the headquarters of {olist}.",
            "organisations headquartered in {name} include {olist}.",
        ),
    },
    "located_in": {
        "fwd": (
            "{s} is located in {o}.",
            "{s} lies within {o}.",
            "{s} is part of {o}.",
            "{o} contains {name}.",
        ),
        "inv": (
            "{o} lies within {name}.",
            "{s} contains {o}.",
            "{o} is located in {name}.",
            "{s} includes {o}.",
        ),
        "inv_many": (
            "{s} includes {olist}.",
            "places within {name} include {olist}.",
            "{olist} lie within {name}.",
        ),
    },
    "created": {
        "fwd": (
            "{s} created {o} in {year}.",
            "{s} made {o} at the age of {age}.",
            "{o} was the work of {name}.",
            "in {year}, {s} completed {o}.",
            "{s} {was} the maker of {o}.",
        ),
        "fwd_many": (
            "{s} created objects including {olist}.",
            "works by {name} include {olist}.",
            "{name} made objects such as {olist}.",
        ),
        "inv": (
            "{s} was made by {o} in {year}.",
            "{o} created {name}.",
            "{s} is the work of {o}.",
            "{o} made {name} at the age of {age}.",
        ),
    },
    "owns": {
        "fwd": (
            "{s} owns {o}.",
            "{o} belongs to {name}.",
            "{s} holds {o} in its collection.",
            "{o} is in the possession of {name}.",
        ),
        "fwd_many": (
            "{s} owns objects including {olist}.",
            "the collection of {name} includes {olist}.",
            "among the possessions of {name} are {olist}.",
        ),
        "inv": (
            "{s} is owned by {o}.",
            "{s} belongs to {o}.",
            "{o} holds {name} in its collection.",
            "{s} is in the possession of {o}.",
        ),
    },
    "married_to": {
        "fwd": (
            "{s} {was} married to {o}.",
            "{poss} {spouse} was {o}.",
            "{name} and {o} were married.",
            "{name} married {o}.",
        ),
    },
    "mentor_of": {
        "fwd": (
            "{s} mentored {o}.",
            "{s} {was} a mentor to {o}.",
            "{o} studied under {name}.",
            "{s} took {o} on as a student.",
        ),
        "fwd_many": (
            "{s} mentored people including {olist}.",
            "students of {name} included {olist}.",
            "{name} was a mentor to people such as {olist}.",
        ),
        "inv": (
            "{s} {was} mentored by {o}.",
            "{s} trained under {o}.",
            "{poss} mentor was {o}.",
            "{o} was a mentor to {name}.",
        ),
    },
    "rival_of": {
        "fwd": (
            "{s} {was} a rival of {o}.",
            "{name} and {o} were long-standing rivals.",
            "{s} had a fierce rivalry with {o}.",
            "{o} and {name} were rivals.",
        ),
        "fwd_many": (
            "{s} had rivalries with {olist}.",
            "the rivals of {name} included {olist}.",
            "{name} was a rival of {olist}.",
        ),
    },
    "twinned_with": {
        "fwd": (
            "{s} is twinned with {o}.",
            "{name} and {o} are twin towns.",
            "{s} has a twinning arrangement with {o}.",
            "{o} is a twin town of {name}.",
        ),
        "fwd_many": (
            "{s} is twinned with {olist}.",
            "the twin towns of {name} include {olist}.",
            "{name} has twinning arrangements with {olist}.",
        ),
    },
    "partner_of": {
        "fwd": (
            "{s} works in partnership with {o}.",
            "{name} and {o} are partners.",
            "{s} cooperates closely with {o}.",
            "{o} is a partner of {name}.",
        ),
        "fwd_many": (
            "{s} works with partners including {olist}.",
            "partners of {name} include {olist}.",
            "{name} cooperates with {olist}.",
        ),
    },
}

# Claim-free sentences that open a passage about a related entity.
PASSAGE_INTROS = (
    "more can be said about {name}.",
    "{name} deserves a closer look.",
    "we now turn to {name}.",
    "a few words about {name} are in order.",
    "the story continues with {name}.",
)

# Prefixed to a sentence that is not the first of its paragraph.
CONNECTIVES = (
    "in addition, ",
    "moreover, ",
    "also, ",
    "furthermore, ",
    "notably, ",
    "beyond that, ",
    "it is also recorded that ",
    "records show that ",
    "as it happens, ",
)
