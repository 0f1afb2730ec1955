"""The progress bar of the experiment runs: training steps completed, with an honest rate.

:func:`~parewire_jax.experiments.train.train_seeds` reports steps only once
they have completed (JAX dispatches work asynchronously, so a bar advanced on
dispatch runs ahead of the work and then stalls), and says when a chunk's
compilation is over; the bar leaves compilation and initialization out of
its rate, so its ETA is the training still to do.
"""

from __future__ import annotations

from types import TracebackType


class TrainingProgress:
  """A tqdm bar over ``total_steps`` training steps of several runs (variants, arms).

  Use ``start(name)`` before each run's ``train_seeds`` and pass ``update``
  and ``compiled`` as its ``progress`` and ``compiled`` callbacks.
  """

  def __init__(self, total_steps: int, *, enabled: bool = True):
    from tqdm.auto import tqdm

    self._bar = tqdm(total=total_steps, disable=not enabled, unit="step", dynamic_ncols=True)
    self._name = ""
    self._count = 0

  def start(self, name: str) -> None:
    """A new run: shown as compiling until :meth:`compiled`."""
    self._name = name
    self._bar.set_description(f"{name} (compiling)")

  def compiled(self) -> None:
    """Compilation and initialization are over: they do not count towards the rate."""
    self._bar.set_description(self._name)
    self._bar.unpause()

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
