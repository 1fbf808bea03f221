"""Names of the built-in models and ramps, importable without torch (for fast `--help`)."""

MODELS = ("lenet5", "mlp", "shiftcnn", "charlstm")
RAMPS = ("cubic", "linear")
