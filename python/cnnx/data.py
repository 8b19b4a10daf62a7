"""Data pipelines for ``fit``, ``evaluate`` and ``predict``.

Besides arrays, these accept:

- a **generator** or any **iterable of batches** ``(x, y)`` or
  ``(x, y, sample_weight)`` (x and y may be lists or dicts by name for
  several inputs or outputs); ``steps_per_epoch`` / ``validation_steps`` /
  ``steps`` as in Keras. Without them an epoch is one pass over the data
  (a generator is read once: for several epochs give ``steps_per_epoch``
  and make it yield ``steps_per_epoch * epochs`` batches, e.g. ``while
  True:``); with them each epoch takes the next that many batches (an
  endless generator needs them: without, its first epoch never ends);
- a :class:`Dataset` (Keras's ``PyDataset``): ``__len__`` batches,
  ``__getitem__(i)`` gives batch i, ``on_epoch_end()`` runs after every
  epoch; ``fit(shuffle=True)`` shuffles the order of the batches;
- a PyTorch ``DataLoader`` (its batches are viewed as NumPy arrays without
  a copy) and torch tensors in general, in place of arrays.

**cnnx is NHWC** (channels last). PyTorch image tensors are NCHW: convert
them with ``x.permute(0, 2, 3, 1)``. A 4-D batch whose last axis is not the
model's channel count is refused with a message saying so; nothing is
transposed silently.

Batches are converted and checked on background threads (``workers`` of
them for a Dataset, one for a generator; ``workers=0`` keeps everything on
the calling thread), up to ``max_queue_size`` batches ahead, while the C++
step runs with the GIL released. A batch of the wrong shape or without
targets is an error naming its index (and epoch), raised before that batch
changes any weight; an error in your generator is raised as it is, at the
step where it happened. Ctrl-C or an error stops the threads cleanly.

Example::

    class Batches(cnnx.data.Dataset):
        def __init__(self, x, y, batch_size, **kwargs):
            super().__init__(**kwargs)           # workers=, max_queue_size=
            self.x, self.y, self.bs = x, y, batch_size
        def __len__(self):
            return -(-len(self.x) // self.bs)
        def __getitem__(self, i):
            s = slice(i * self.bs, (i + 1) * self.bs)
            return self.x[s], self.y[s]

    model.fit(Batches(x, y, 64, workers=2), epochs=5, validation_data=Batches(xv, yv, 256))
"""

from ._validate import as_int

__all__ = ["Dataset"]


class Dataset:
    """A sequence of batches with Keras ``PyDataset`` semantics.

    Subclass it and define ``__len__`` (the number of batches) and
    ``__getitem__(i)`` (batch ``i``: ``(x, y)`` or ``(x, y, sample_weight)``;
    for ``predict`` ``x`` alone is enough). ``on_epoch_end()`` is called
    after every epoch of ``fit`` (e.g. to reshuffle samples yourself).

    ``workers``: how many threads fetch batches in parallel (0: on the
    training thread); ``max_queue_size``: how many batches may be ready
    ahead. ``__getitem__`` must therefore be safe to call from several
    threads at once (reading arrays is). ``use_multiprocessing`` is refused:
    the C++ step releases the GIL, so threads overlap with it already.
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self.workers = as_int(workers, "workers", 0)
        if use_multiprocessing:
            raise ValueError(
                "use_multiprocessing: cnnx prepares batches on threads (the C++ "
                "step runs without the GIL); processes are not supported"
            )
        self.use_multiprocessing = False
        self.max_queue_size = as_int(max_queue_size, "max_queue_size", 1)

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__}: define __len__ (the number of batches)")

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__}: define __getitem__(index) -> (x, y)")

    def on_epoch_end(self):
        pass

    @property
    def num_batches(self):
        """``len(self)``, as Keras's ``PyDataset.num_batches``."""
        return len(self)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]
