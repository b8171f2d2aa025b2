"""Evaluation: patient-level cross-validation and external evaluation of model sets, the statistics
of the tables (summaries, bootstrap CI, paired Wilcoxon), and the report with its figures."""
