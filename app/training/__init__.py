"""Training and evaluation on a labelled cohort: dataset cache, augmentation, training loop,
statistics (DeLong, bootstrap). torch + numpy; no Qt."""
