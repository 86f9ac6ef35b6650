"""Rules: one module per rule kind (what each declares: :mod:`rules.rule`); the libraries
they share are under :mod:`rules.lib`."""
