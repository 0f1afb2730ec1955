"""Argument checks shared by every public entry point.

Each check runs on static (Python or NumPy) values at trace time and raises a
``ValueError`` that names the argument and says what was expected; nothing
is checked inside compiled code. JAX is imported only by the checks that need
it, so the command line validates its arguments without loading JAX.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

import numpy as np

if TYPE_CHECKING:
  from jax import Array

Pass = Literal["in", "out"]
PASSES: tuple[Pass, ...] = ("in", "out")

T = TypeVar("T")


@overload
def check_int(value: Any, name: str, *, minimum: int = 1, allow_none: Literal[False] = False) -> int: ...
@overload
def check_int(value: Any, name: str, *, minimum: int = 1, allow_none: bool) -> int | None: ...
def check_int(value: Any, name: str, *, minimum: int = 1, allow_none: bool = False) -> int | None:
  """``value`` as an ``int >= minimum`` (``None`` passes when ``allow_none``); bools are refused.

  >>> check_int(3, "num_draws")
  3
  >>> check_int(0, "num_draws")
  Traceback (most recent call last):
  ...
  ValueError: num_draws must be an int >= 1, got 0.
  """
  if value is None and allow_none:
    return None
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < minimum:
    expected = f"an int >= {minimum}" if not allow_none else f"None or an int >= {minimum}"
    raise ValueError(f"{name} must be {expected}, got {value!r}.")
  return int(value)


def check_scalar_int(value: Any, name: str, *, minimum: int = 1) -> None:
  """An integer scalar ``>= minimum``: a Python or NumPy int or a 0-d integer array.

  A traced value (e.g. injected by ``optax.inject_hyperparams``) cannot be
  checked at trace time and passes.
  """
  from jax.core import Tracer

  if isinstance(value, Tracer):
    return
  array = np.asarray(value)
  if (
    array.shape != ()
    or isinstance(value, bool)
    or array.dtype == np.bool_
    or not np.issubdtype(array.dtype, np.integer)
    or array < minimum
  ):
    raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def check_choice(value: T, allowed: Sequence[T], name: str) -> T:
  """``value`` if it is one of ``allowed``.

  >>> check_choice("mlp", ("mlp", "lenet"), "model")
  'mlp'
  """
  if value not in allowed:
    raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))}; got {value!r}.")
  return value


def check_passes(passes: Sequence[str]) -> tuple[Pass, ...]:
  """Validates a sequence of pass names and returns it as a tuple."""
  if isinstance(passes, str):
    raise ValueError(
      f"passes must be a sequence of pass names, got the string {passes!r}; write ({passes!r},) for a single pass."
    )
  passes = tuple(passes)
  unknown = [p for p in passes if p not in PASSES]
  if unknown:
    raise ValueError(f"passes={passes!r} contains unknown pass name(s) {unknown}; each pass must be one of {PASSES}.")
  return passes  # type: ignore[return-value]  # every name was checked against PASSES


def check_offset(offset: float) -> float:
  """Validates Eq. 5's additive constant (the paper uses 1)."""
  try:
    value = float(offset)
  except TypeError as e:  # jax.errors.ConcretizationTypeError for a traced value is a TypeError
    raise ValueError(f"offset must be a positive Python number, got {offset!r}.") from e
  if not value > 0 or value != value or value == float("inf"):
    raise ValueError(f"offset must be a finite number > 0, got {offset!r}.")
  return value


def check_bool(value: Any, name: str) -> bool:
  """``value`` if it is a Python (or NumPy) bool; a traced or other value is refused.

  >>> check_bool(True, "scale_free")
  True
  """
  if not isinstance(value, bool | np.bool_):
    raise ValueError(f"{name} must be True or False, got {value!r}.")
  return bool(value)


def check_fraction(fraction: float, name: str = "fraction") -> float:
  """A concrete number in ``[0, 1]``."""
  try:
    value = float(fraction)
  except TypeError as e:  # jax.errors.ConcretizationTypeError for a traced value is a TypeError
    raise ValueError(f"{name} must be a concrete number in [0, 1], got {fraction!r}.") from e
  if not 0.0 <= value <= 1.0:
    raise ValueError(f"{name} must be in [0, 1], got {fraction!r}.")
  return value


def check_floating(dtype: Any, name: str = "dtype") -> None:
  """A real floating dtype (float16, bfloat16, float32, float64)."""
  import jax.numpy as jnp

  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(
      f"{name} must be a real floating dtype (float16, bfloat16, float32, float64), got {jnp.dtype(dtype).name}."
    )


def check_array(x: Any, name: str) -> None:
  """Anything with a ``shape`` and a ``dtype`` (a JAX or NumPy array)."""
  if not (hasattr(x, "shape") and hasattr(x, "dtype")):
    raise ValueError(f"{name} must be a JAX or NumPy array, got {type(x).__name__}.")


def as_typed_key(key: Any, name: str = "key") -> Array:
  """Validates a single PRNG key; a legacy raw key becomes the typed key with the same bits.

  Accepts a typed key (``jax.random.key``) or a legacy ``uint32`` key
  (``jax.random.PRNGKey``). Typed keys let legacy-key calls share compiled code
  with typed-key calls; every derived key (splits, folds) has the same bits
  either way.
  """
  import jax
  import jax.numpy as jnp

  if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    if key.shape == ():
      return key
  elif isinstance(key, (jax.Array, np.ndarray)) and key.dtype == jnp.uint32 and key.ndim == 1:
    try:
      return jax.random.wrap_key_data(jnp.asarray(key))  # e.g. jax.random.PRNGKey(0)
    except (TypeError, ValueError):
      pass  # not the default implementation's key shape
  raise ValueError(
    f"{name} must be a single PRNG key (jax.random.key(seed) or a legacy jax.random.PRNGKey(seed)), "
    f"got {type(key).__name__} with shape {getattr(key, 'shape', None)} and dtype {getattr(key, 'dtype', None)}."
  )


def _is_axis_spec(spec: Any) -> bool:
  if isinstance(spec, bool):
    return False
  if isinstance(spec, int):
    return True
  return (
    isinstance(spec, Sequence)
    and not isinstance(spec, str)
    and all(isinstance(a, int) and not isinstance(a, bool) for a in spec)
  )


def check_axes(spec: Any, name: str, *, allow_none: bool = False, allow_callable: bool = False) -> Any:
  """``spec`` if it is an int or a sequence of ints (or ``None`` / a callable where allowed).

  Ranges are checked later, against the array's rank.
  """
  if (allow_callable and callable(spec)) or _is_axis_spec(spec) or (allow_none and spec is None):
    return spec
  expected = (
    ["None"] * allow_none + ["an int", "a sequence of ints"] + ["a callable (path, leaf) -> axes"] * allow_callable
  )
  raise ValueError(f"{name} must be {', '.join(expected[:-1])} or {expected[-1]}; got {spec!r}.")
