"""Names of the built-in models and ramps, importable without torch (for fast `--help`)."""

MODELS = ("lenet5", "mlp", "shiftcnn", "charlstm", "vgg16", "vgg16-shift", "resnet20", "resnet20-shift")
RAMPS = ("cubic", "linear")
