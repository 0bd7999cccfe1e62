"""The core, the bottom layer: data contracts, the data-set layout, data sets, domain errors
and settings parsing. It imports no other package of the project."""
