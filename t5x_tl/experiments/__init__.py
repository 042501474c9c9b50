"""Drivers that run a whole study (many training runs), resumably, and write its table and chart."""
