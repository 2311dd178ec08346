"""Network and property file formats: ONNX and NNet import/export, VNN-LIB properties, VNN-COMP runs."""
