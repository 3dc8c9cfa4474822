"""Protocol: Optuna-coordinated search over folds, repeats and test runs, resumable and multi-worker."""
