"""Progress of the experiment runs: what the trainer reports, how much work a run is, and the bar that shows it.

:func:`~parewire_jax.experiments.train_seeds` reports to an
:class:`Observer`: steps only once they have completed (JAX dispatches work
asynchronously, so a bar advanced on dispatch runs ahead of the work and then
stalls), when a chunk's compilation is over, and when an epoch's evaluation
has completed. :class:`TrainingProgress` leaves compilation and
initialization out of its rate and counts each evaluation as the training
steps of about the same work (:func:`evaluation_work`), so its ETA is the
training and evaluation still to do. The arithmetic of how much work a run
is lives here (``run_work``, :func:`evaluation_work`).
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, runtime_checkable


@runtime_checkable
class Observer(Protocol):
  """What :func:`~parewire_jax.experiments.train_seeds` tells about its progress.

  >>> isinstance(TrainingProgress(1, enabled=False), Observer)  # an Observer by its methods
  True
  """

  def compiled(self) -> None:
    """A chunk's step functions are compiled and its models initialized; its first step comes next."""

  def trained(self, steps: int) -> None:
    """``steps`` more training steps have completed (or were loaded with a saved chunk)."""

  def evaluated(self) -> None:
    """An epoch's evaluations (validation, test and any training examples) have completed (or were loaded)."""


class _Silent:
  def compiled(self) -> None:
    pass

  def trained(self, steps: int) -> None:
    pass

  def evaluated(self) -> None:
    pass


SILENT: Observer = _Silent()


def evaluation_work(batch_size: int, num_evaluated: int) -> int:
  """One epoch's evaluation of ``num_evaluated`` examples in training steps of about the same time, at least 1.

  An evaluated image weighs 3/4 of a trained one: ``n`` images are
  ``3n / (4 · batch_size)`` steps. By FLOPs a forward pass is a third of a
  training step, but on XLA:CPU the default ``compare`` run (LeNet, 30 seeds,
  4000 evaluated images) measured 0.72–0.82 of a training step's time per
  image, and a third made the bar's ETA 20–30 % short (``benchmarks/RESULTS.md``).

  >>> evaluation_work(128, 720)  # the digits' 360 validation and 360 test images
  4
  """
  return max(1, round(3 * num_evaluated / (4 * batch_size)))


def run_work(
  *, num_seeds: int, seeds_per_chunk: int | None, epochs: int, steps_per_epoch: int, evaluation_work: int
) -> int:
  """The bar's count for training ``num_seeds`` seeds once: every chunk's steps and its evaluations' work.

  >>> run_work(num_seeds=5, seeds_per_chunk=2, epochs=2, steps_per_epoch=10, evaluation_work=3)  # 3 chunks
  78
  """
  chunks = -(-num_seeds // (seeds_per_chunk or num_seeds))
  return chunks * epochs * (steps_per_epoch + evaluation_work)


class TrainingProgress:
  """A tqdm bar over the training steps and evaluations of several runs (arms, cells): an :class:`Observer`.

  ``total`` is the work of all runs (``run_work``). Call ``start(name,
  evaluation_work)`` before each run's ``train_seeds`` and pass the bar as
  its ``observer``; or pass the bar to ``run_compare(progress=...)``, which
  does so for its variants.

  >>> with TrainingProgress(10, enabled=False) as bar:
  ...   bar.start("base", evaluation_work=1)
  ...   bar.trained(4)
  >>> bar.count
  4
  """

  def __init__(self, total: int, *, enabled: bool = True):
    from tqdm.auto import tqdm

    self._bar = tqdm(total=total, disable=not enabled, unit="step", dynamic_ncols=True)
    self._name = ""
    self._count = 0
    self._evaluation_work = 0
    self.prefix = ""  # shown before every run's name, e.g. the atlas cell the runs belong to

  def start(self, name: str, *, evaluation_work: int) -> None:
    """A new run, whose evaluations weigh ``evaluation_work`` steps each: shown as compiling until :meth:`compiled`."""
    self._name = self.prefix + name
    self._evaluation_work = evaluation_work
    self._bar.set_description(f"{self._name} (compiling)")

  def compiled(self) -> None:
    """Compilation and initialization are over: they do not count towards the rate."""
    self._bar.set_description(self._name)
    self._bar.unpause()

  def trained(self, steps: int) -> None:
    self._count += steps
    self._bar.update(steps)

  def evaluated(self) -> None:
    """An epoch's evaluation has completed: ``evaluation_work`` steps' worth of work."""
    self.trained(self._evaluation_work)

  @property
  def count(self) -> int:
    """Steps' worth of work reported so far."""
    return self._count

  def __enter__(self) -> TrainingProgress:
    return self

  def __exit__(
    self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
  ) -> None:
    self._bar.close()
