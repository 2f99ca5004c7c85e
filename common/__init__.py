"""Leaf utilities every layer may use: argument parsing (``cli``), the validation helper
(``checks``), atomic files and run folders (``files``), plots saved with their data
(``plots``), seed ranges (``seeds``), statistics (``stats``) and TensorBoard
hyperparameters (``tensorboard``).

Import the module you need (``from common.seeds import take``): this package imports none.
"""
