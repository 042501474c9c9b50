"""Feature layouts: how a model kind reads a SeqIO task, one object per SeqIO feature converter.

=================  ============================  ============================================================
layout             converter                     task features (length)
=================  ============================  ============================================================
encoder_decoder    ``EncDecFeatureConverter``    inputs (inputs_length), targets (targets_length)
decoder_only       ``DecoderFeatureConverter``   targets (targets_length); inputs_length is unused
prefix_lm          ``PrefixLMFeatureConverter``  inputs and targets, concatenated to inputs_length + targets_length;
                                                 loss on the targets part only
encoder_only       ``EncoderFeatureConverter``   inputs and targets aligned token for token (so both lengths must
                   (corrupted-token loss)        be equal); loss on every corrupted position: the mask token
                                                 ``<extra_id_0>`` and the random replacements of the
                                                 BERT-style objective (where inputs differ from targets)
=================  ============================  ============================================================

A model kind (:mod:`t5x_tl.models.kinds`) names its layout; the data pipeline reads only the layout, so it knows
nothing of models.
"""

from __future__ import annotations

import dataclasses

import seqio
import tensorflow as tf

from t5x_tl.data.objectives.encoders import mask_token_id


class CorruptedTokensEncoderFeatureConverter(seqio.EncoderFeatureConverter):
    """SeqIO's encoder converter, with the loss on every corrupted position rather than only masked ones.

    T5's BERT-style objective replaces 10% of its noise tokens by random tokens; BERT trains on those too,
    and they are exactly the positions where the inputs differ from the targets.
    """

    def _convert_features(self, ds: tf.data.Dataset, input_lengths: dict[str, int]) -> tf.data.Dataset:
        def weigh(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            inputs, targets = features["encoder_input_tokens"], features["encoder_target_tokens"]
            corrupted = (tf.equal(inputs, self.mask_id) | tf.not_equal(inputs, targets)) & (targets > 0)
            return {**features, "encoder_loss_weights": tf.cast(corrupted, features["encoder_loss_weights"].dtype)}

        return super()._convert_features(ds, input_lengths).map(weigh, num_parallel_calls=tf.data.AUTOTUNE)


@dataclasses.dataclass(frozen=True)
class FeatureLayout:
    """Which task features a model reads, through which converter, and how long its sequences are.

    ``reads_inputs``: the task's ``inputs`` feature is read (a decoder-only LM reads only ``targets``).
    ``concatenated``: inputs and targets form one sequence (a prefix LM). ``aligned``: targets align with inputs
    token for token (an encoder-only model), so both lengths must be equal and the converter needs the task's mask
    token.
    """

    name: str
    converter: type[seqio.FeatureConverter]
    reads_inputs: bool = True
    concatenated: bool = False
    aligned: bool = False

    def check(self, inputs_length: int, targets_length: int) -> None:
        """ValueError when the lengths do not fit the layout."""
        if self.aligned and inputs_length != targets_length:
            raise ValueError(
                f"the {self.name} layout aligns targets with inputs, so targets_length={targets_length} must equal "
                f"inputs_length={inputs_length}"
            )

    def task_feature_lengths(self, inputs_length: int, targets_length: int) -> dict[str, int]:
        """The task features the converter reads, with their lengths."""
        if not self.reads_inputs:
            return {"targets": targets_length}
        return {"inputs": inputs_length, "targets": targets_length}

    def sequence_features(self) -> tuple[str, ...]:
        """The task features of the sequence the model reads first: the encoder's input, or the decoder's whole
        sequence (what a Recurrent Memory Transformer splits into segments)."""
        if not self.reads_inputs:
            return ("targets",)
        return ("inputs", "targets") if self.concatenated else ("inputs",)

    def sequence_length(self, inputs_length: int, targets_length: int) -> int:
        """The length of the :meth:`sequence_features`."""
        lengths = {"inputs": inputs_length, "targets": targets_length}
        return sum(lengths[name] for name in self.sequence_features())

    def positions(self, inputs_length: int, targets_length: int) -> int:
        """Model positions per example (aligned targets are not extra positions)."""
        if self.aligned or not self.reads_inputs:
            return self.sequence_length(inputs_length, targets_length)
        return inputs_length + targets_length

    def converter_for(self, task: str, pack: bool) -> seqio.FeatureConverter:
        """The converter for ``task``, without SeqIO's per-example length asserts.

        Those asserts cannot fire here: ``seqio.get_dataset`` trims every task feature to its length, and padding
        or packing makes every model feature exactly its length (SeqIO still checks features, dtypes and ranks
        once, when the dataset is built). Dropping them cuts the CPU per span-corruption example by about a sixth.
        """
        options = {}
        if self.aligned:
            options["mask_id"] = mask_token_id(seqio.get_mixture_or_task(task).output_features["inputs"].vocabulary)
        return self.converter(pack=pack, apply_length_check=False, **options)


ENCODER_DECODER = FeatureLayout("encoder_decoder", seqio.EncDecFeatureConverter)
DECODER_ONLY = FeatureLayout("decoder_only", seqio.DecoderFeatureConverter, reads_inputs=False)
PREFIX_LM = FeatureLayout("prefix_lm", seqio.PrefixLMFeatureConverter, concatenated=True)
ENCODER_ONLY = FeatureLayout("encoder_only", CorruptedTokensEncoderFeatureConverter, aligned=True)
