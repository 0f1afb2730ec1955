"""The progress bar of the experiment runs: training steps completed, with an honest rate.

:func:`~parewire_jax.experiments.train.train_seeds` reports steps only once
they have completed (JAX dispatches work asynchronously, so a bar advanced on
dispatch runs ahead of the work and then stalls), says when a chunk's
compilation is over, and when an epoch's evaluation has completed. The bar
leaves compilation and initialization out of its rate and counts each
evaluation as the training steps of about the same work
(``parewire_jax.experiments.train.evaluation_work``), so its ETA is the
training and evaluation still to do.
"""

from __future__ import annotations

from types import TracebackType


class TrainingProgress:
  """A tqdm bar over the training steps and evaluations of several runs (variants, arms).

  ``total_steps`` training steps and ``evaluations`` evaluations of
  ``evaluation_work`` steps' worth each. Use ``start(name)`` before each
  run's ``train_seeds`` and pass ``update``, ``compiled`` and ``evaluated``
  as its ``progress``, ``compiled`` and ``evaluated`` callbacks; or pass the
  bar to ``run_compare(progress=...)``, which does so for its variants.

  >>> with TrainingProgress(10, enabled=False) as bar:
  ...   bar.start("base")
  ...   bar.update(4)
  >>> bar.count
  4
  """

  def __init__(self, total_steps: int, *, evaluations: int = 0, evaluation_work: int = 0, enabled: bool = True):
    from tqdm.auto import tqdm

    self._evaluation_work = evaluation_work
    total = total_steps + evaluations * evaluation_work
    self._bar = tqdm(total=total, disable=not enabled, unit="step", dynamic_ncols=True)
    self._name = ""
    self._count = 0
    self.prefix = ""  # shown before every run's name, e.g. the atlas cell the runs belong to

  def start(self, name: str, *, evaluation_work: int | None = None) -> None:
    """A new run: shown as compiling until :meth:`compiled`.

    ``evaluation_work`` replaces the steps' worth of each evaluation from now
    on, for a bar over runs on different data (the cells of an atlas, whose
    total counts each run's evaluations at their own work).
    """
    self._name = self.prefix + name
    if evaluation_work is not None:
      self._evaluation_work = evaluation_work
    self._bar.set_description(f"{self._name} (compiling)")

  def compiled(self) -> None:
    """Compilation and initialization are over: they do not count towards the rate."""
    self._bar.set_description(self._name)
    self._bar.unpause()

  def evaluated(self) -> None:
    """An epoch's evaluation has completed: ``evaluation_work`` steps' worth of work."""
    self.update(self._evaluation_work)

  def update(self, steps: int) -> None:
    self._count += steps
    self._bar.update(steps)

  @property
  def count(self) -> int:
    """Steps reported so far."""
    return self._count

  def __enter__(self) -> TrainingProgress:
    return self

  def __exit__(
    self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
  ) -> None:
    self._bar.close()
