"""The shared state that the runner's workers are initialised with, for tests that drive an executor directly."""

import numpy as np

from advgap.data.mnist import load_mnist
from advgap.experiment.config import RunConfig
from advgap.experiment.runner import load_models


def shared_state(net_file, timeout=20.0):
    """What `runner._init_worker` takes for one network file: nets, pixels, labels, config."""
    (model,) = load_models((str(net_file),))
    images, labels = load_mnist("test")
    pixels = images.reshape(len(images), -1).astype(np.float64) / 255.0
    return ({model.name: model.net}, pixels, labels, RunConfig(models=(str(net_file),), timeout=timeout))
