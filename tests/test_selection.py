"""The one leaf-selection rule, as every tree operation applies it (parewire_jax/selection.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.tree_util import keystr

import parewire_jax as pw
from parewire_jax.selection import is_floating_array, select, selected_leaves


def _tree():
  keys = jax.random.split(jax.random.key(0), 3)
  return {
    "embed": {"table": jax.random.normal(keys[0], (10, 6))},
    "dense": {"kernel": jax.random.normal(keys[1], (6, 4)), "bias": jnp.zeros(4)},
    "head": {"kernel": jax.random.normal(keys[2], (4, 3)), "bias": jnp.zeros(3)},
    "step": jnp.zeros((2, 2), jnp.int32),
    "activation": jax.nn.relu,
  }


def _not_embed(path, leaf):
  return "embed" not in keystr(path)  # written about names only: also matches biases and ints


def _chosen(tree, where=None, eligible=pw.is_weight_matrix):
  return sorted(keystr(path) for path, _ in selected_leaves(tree, where, eligible=eligible))


def test_default_selects_the_floating_matrices():
  assert _chosen(_tree()) == ["['dense']['kernel']", "['embed']['table']", "['head']['kernel']"]


def test_where_narrows_and_never_sees_ineligible_leaves():
  seen = []

  def where(path, leaf):
    seen.append(keystr(path))
    return _not_embed(path, leaf)

  assert _chosen(_tree(), where) == ["['dense']['kernel']", "['head']['kernel']"]
  assert sorted(seen) == ["['dense']['kernel']", "['embed']['table']", "['head']['kernel']"]


def test_other_eligibility_widens_only_the_candidates():
  chosen = _chosen(_tree(), lambda path, leaf: True, eligible=is_floating_array)
  assert chosen == [
    "['dense']['bias']",
    "['dense']['kernel']",
    "['embed']['table']",
    "['head']['bias']",
    "['head']['kernel']",
  ]


def test_shapes_are_judged_like_arrays():
  shapes = jax.eval_shape(lambda: {k: v for k, v in _tree().items() if k != "activation"})
  assert select(shapes) == select({k: v for k, v in _tree().items() if k != "activation"})


@pytest.mark.parametrize(
  "where, match",
  [
    ("kernel", "where must be None or a callable"),
    (lambda path, leaf: 1, "where must return a Python bool"),
    (lambda path, leaf: jnp.asarray(True), "where must return a Python bool"),
  ],
)
def test_bad_where_is_a_clear_error(where, match):
  with pytest.raises(ValueError, match=match):
    select(_tree(), where)


def test_every_tree_operation_applies_the_same_rule():
  tree = _tree()
  expected = {"['dense']['kernel']", "['head']['kernel']"}

  rewired = pw.rewire_params(jax.random.key(1), tree, where=_not_embed)
  changed = {keystr(p) for p, leaf in jax.tree_util.tree_flatten_with_path(rewired)[0] if leaf is not _leaf(tree, p)}
  assert changed == expected

  state = pw.laperm(optax.sgd(0.1), 2, where=_not_embed).init({k: v for k, v in tree.items() if k != "activation"})
  stored = {
    keystr(p)
    for p, leaf in jax.tree_util.tree_flatten_with_path(
      state.sorted_init, is_leaf=lambda x: isinstance(x, optax.MaskedNode)
    )[0]
    if not isinstance(leaf, optax.MaskedNode)
  }
  assert stored == expected

  pruned = pw.random_prune(jax.random.key(2), tree, 0.5, where=_not_embed)
  changed = {keystr(p) for p, leaf in jax.tree_util.tree_flatten_with_path(pruned)[0] if leaf is not _leaf(tree, p)}
  assert changed == expected

  arrays = {k: v for k, v in tree.items() if k != "activation"}
  distances = pw.ranking_distance(arrays, arrays, where=_not_embed)
  measured = {keystr(p) for p, d in _flat_results(distances, pw.RankingDistance)}
  assert measured == expected

  deviations = pw.weight_deviation(arrays, arrays, where=_not_embed)  # eligible: every floating array
  measured = {keystr(p) for p, d in _flat_results(deviations, pw.WeightDeviation)}
  assert measured == expected | {"['dense']['bias']", "['head']['bias']"}


def _leaf(tree, path):
  for entry in path:
    tree = tree[entry.key]
  return tree


def _flat_results(tree, result_type):
  flat = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: isinstance(x, result_type))[0]
  return [(p, x) for p, x in flat if isinstance(x, result_type)]


def test_unselected_leaves_are_the_same_objects():
  tree = _tree()
  new = pw.rewire_params(jax.random.key(1), tree, where=_not_embed)
  assert new["embed"]["table"] is tree["embed"]["table"]
  assert new["activation"] is tree["activation"]
  np.testing.assert_array_equal(new["step"], tree["step"])
  assert new["step"] is tree["step"]
