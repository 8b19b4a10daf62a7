"""Model files written by earlier versions of cnnx still load and behave the
same: tests/data/model_format1.cnnx was saved by cnnx 0.1.0 (format 1, the
last release before models became graphs): a Sequential with batch norm,
residual blocks, a projection shortcut, dropout and an Adam state."""

from pathlib import Path

import numpy as np

import cnnx

DATA = Path(__file__).resolve().parent / "data"


def test_format1_file_loads_predicts_and_resumes_training():
    ref = np.load(DATA / "model_format1_expected.npz")
    model = cnnx.load_model(DATA / "model_format1.cnnx")
    assert isinstance(model, cnnx.Sequential)
    assert model.count_params() == 757
    np.testing.assert_allclose(model.predict(ref["x"]), ref["predict"], rtol=1e-5, atol=1e-6)
    # the optimiser state came back: the next step is the one the old version took
    loss = model.train_on_batch(ref["x"][:8], ref["y"][:8])
    assert abs(loss - float(ref["next_loss"])) < 1e-5
    np.testing.assert_allclose(model.predict(ref["x"]), ref["after"], rtol=1e-4, atol=1e-5)
