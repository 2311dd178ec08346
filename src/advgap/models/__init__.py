"""Networks: the torch MLP, training, the `.npz` network file format and the bundled study nets."""
