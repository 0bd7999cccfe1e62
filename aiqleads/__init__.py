"""The core, the bottom layer: the data contracts, the data-set layout, domain errors and what
builds only on them (data sets, settings parsing). It imports no other package of the project."""
