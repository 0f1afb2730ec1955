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


def test_default_selects_the_kernels_not_the_embedding():
  assert _chosen(_tree()) == ["['dense']['kernel']", "['head']['kernel']"]


def test_every_weight_matrix_on_request():
  chosen = _chosen(_tree(), pw.is_weight_matrix)
  assert chosen == ["['dense']['kernel']", "['embed']['table']", "['head']['kernel']"]


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


# --------------------------------------------------------------------------- the default: dense and conv kernels

# Leaf paths as each ecosystem names them (copied from real trees: Hugging Face Flax BERT, GPT-2, LLaMA and ViT,
# Haiku ResNet18 and MultiHeadAttention, Keras variable paths, equimo's ViT, flaxmodels' ResNet18, an nnx State).
KERNELS = [
  "['bert']['encoder']['layer']['0']['attention']['self']['query']['kernel']",
  "['transformer']['h']['0']['mlp']['c_fc']['kernel']",
  "['lm_head']['kernel']",
  "['vit']['embeddings']['patch_embeddings']['projection']['kernel']",
  "['res_net18/~/initial_conv']['w']",
  "['multi_head_attention/query']['w']",
  "['embed_proj']['w']",  # a Haiku Linear named after embeddings is still a Linear
  "['transformer_layer_0/self_attention/query/kernel']",
  ".blocks[0].blocks[0].attn.qkv.weight",
  ".patch_embed.proj.weight",
  "['params']['BasicBlock_0']['Conv_0']['kernel']",
  "['query']['kernel'].value",
]
NOT_KERNELS = [
  "['bert']['embeddings']['word_embeddings']['embedding']",
  "['transformer']['wte']['embedding']",
  "['transformer']['wpe']['embedding']",
  "['model']['embed_tokens']['embedding']",
  "['vit']['embeddings']['cls_token']",
  "['vit']['embeddings']['position_embeddings']",
  "['res_net18/~/initial_batchnorm']['scale']",
  "['res_net18/~/initial_batchnorm']['offset']",
  "['embed']['embeddings']",
  "['token_embedding/embeddings']",
  "['embeddings_layer_norm/gamma']",
  ".global_pos_embed.weight",
  ".cls_token",
  ".reg_tokens",
  ".patch_embed.proj.bias",
  "['query']['bias'].value",
  "['tok_embeddings']['weight']",
]


def _path(text):
  """A key path from its keystr (DictKey, GetAttrKey and SequenceKey entries)."""
  from jax.tree_util import DictKey, GetAttrKey, SequenceKey

  path = []
  for dict_key, attr, index in __import__("re").findall(r"\['([^']*)'\]|\.(\w+)|\[(\d+)\]", text):
    path.append(DictKey(dict_key) if dict_key else GetAttrKey(attr) if attr else SequenceKey(int(index)))
  return tuple(path)


@pytest.mark.parametrize("text", KERNELS)
def test_kernels_are_told_by_their_names(text):
  assert keystr(_path(text)) == text
  assert pw.is_kernel(_path(text), jnp.zeros((4, 3)))
  assert select({"x": jnp.zeros((4, 3))}, lambda p, x: pw.is_kernel(_path(text), x)) == {"x": True}


@pytest.mark.parametrize("text", NOT_KERNELS)
def test_embeddings_tokens_and_norms_are_not_kernels(text):
  assert keystr(_path(text)) == text
  assert not pw.is_kernel(_path(text), jnp.zeros((1, 1, 1, 3)))


def test_a_matrix_the_default_cannot_tell_is_an_error_naming_it():
  tree = {"dense": {"kernel": jnp.ones((4, 3))}, "pairs": jnp.ones((3, 3)), "bias": jnp.ones(3)}
  with pytest.raises(ValueError, match=r"cannot tell.*\['pairs'\] \(3, 3\).*is_kernel.*is_weight_matrix"):
    pw.rewire_params(jax.random.key(0), tree)
  with pytest.raises(ValueError, match=r"\['pairs'\]"):
    pw.laperm(optax.sgd(0.1), 2).init(tree)
  assert _chosen(tree, pw.is_kernel) == ["['dense']['kernel']"]
  assert _chosen(tree, pw.is_weight_matrix) == ["['dense']['kernel']", "['pairs']"]


def test_equinox_modules_tell_their_kernels_and_layouts_whatever_their_names():
  eqx = pytest.importorskip("equinox")
  keys = jax.random.split(jax.random.key(0), 3)

  class Model(eqx.Module):
    lookup: eqx.nn.Embedding  # a name that says nothing: the module type tells
    mixer: eqx.nn.Linear
    norm: eqx.nn.LayerNorm

  model = Model(eqx.nn.Embedding(10, 6, key=keys[0]), eqx.nn.Linear(6, 5, key=keys[1]), eqx.nn.LayerNorm(5))
  assert _chosen(model) == [".mixer.weight"]
  new = pw.rewire_params(jax.random.key(1), model)  # out_axis: (out, in) from the module, no out_axis=0 needed
  assert new.lookup.weight is model.lookup.weight
  path = _path(".mixer.weight")
  expected = pw.rewire(pw.leaf_key(jax.random.key(1), path), model.mixer.weight, out_axis=0)
  np.testing.assert_array_equal(np.asarray(new.mixer.weight), np.asarray(expected))


def test_nnx_modules_tell_linear_general_axes():
  from flax import nnx

  class Model(nnx.Module):
    def __init__(self, rngs):
      self.table = nnx.Embed(10, 8, rngs=rngs)
      self.heads = nnx.LinearGeneral(8, (2, 4), rngs=rngs)  # kernel (8, 2, 4): outputs over (2, 4)
      self.back = nnx.LinearGeneral((2, 4), 8, axis=(-2, -1), rngs=rngs)  # kernel (2, 4, 8)

  model = Model(nnx.Rngs(0))
  assert _chosen(model) == [".back.kernel.value", ".heads.kernel.value"]
  new = pw.rewire_params(jax.random.key(1), model)
  key = pw.leaf_key(jax.random.key(1), _path(".heads.kernel.value"))
  expected = pw.rewire(key, model.heads.kernel[...], out_axis=(1, 2))
  np.testing.assert_array_equal(np.asarray(new.heads.kernel[...]), np.asarray(expected))
  # The nnx State of the same model has no module types: the names of MultiHeadAttention tell q/k/v, a custom
  # rank-3 kernel is an error naming it.
  state = nnx.split(model)[1]
  with pytest.raises(ValueError, match=r"\['back'\]\['kernel'\].value of shape \(2, 4, 8\): a rank-3 kernel"):
    pw.rewire_params(jax.random.key(1), state)


@pytest.mark.parametrize(
  "text, shape, expected",
  [
    ("['Dense_0']['kernel']", (6, 4), (1,)),
    ("['Conv_0']['kernel']", (3, 3, 2, 4), (3,)),
    ("['conv1_d']['w']", (3, 2, 4), (2,)),
    ("['layers_0']['attention']['query']['kernel']", (8, 2, 4), (1, 2)),
    ("['mha/value']['w']", (8, 2, 4), (1, 2)),
    ("['attention']['out']['kernel']", (2, 4, 8), (2,)),
    ("['conv2_d_transpose']['w']", (3, 3, 4, 2), (2,)),
    ("['ConvTranspose_0']['kernel']", (3, 3, 2, 4), (3,)),
    (".layers[0].weight", (4, 6), (0,)),
    ("['encoder']['fc']['weight']", (4, 6, 3, 3), (0,)),
  ],
)
def test_kernel_out_axes_table(text, shape, expected):
  assert pw.kernel_out_axes(_path(text), jnp.zeros(shape)) == expected


def test_hugging_face_gpt2_conv1d_kernels_are_out_in():
  gpt2 = {
    "h": {"0": {"attn": {"c_attn": {"kernel": jnp.zeros((24, 8))}}, "mlp": {"c_fc": {"kernel": jnp.zeros((32, 8))}}}}
  }
  neo = {"h": {"0": {"mlp": {"c_fc": {"kernel": jnp.zeros((8, 32))}}}}}  # GPT-Neo: a Dense, (in, out)
  rule = pw.selection.TreeRule(gpt2)
  assert rule.out_axes(_path("['h']['0']['mlp']['c_fc']['kernel']"), jnp.zeros((32, 8))) == (0,)
  assert pw.selection.TreeRule(neo).out_axes(_path("['h']['0']['mlp']['c_fc']['kernel']"), jnp.zeros((8, 32))) == (1,)


def test_stacked_layers_are_judged_without_their_batch_axis():
  w = jax.random.normal(jax.random.key(0), (3, 8, 2, 4))  # nn.scan over 3 layers of (in, heads, head_dim)
  tree = {"layers": {"attention": {"query": {"kernel": w}}}}
  new = pw.rewire_params(jax.random.key(1), tree, batch_axis=0)
  key = pw.leaf_key(jax.random.key(1), _path("['layers']['attention']['query']['kernel']"))
  expected = pw.rewire(key, w, out_axis=(2, 3), batch_axis=0)
  np.testing.assert_array_equal(np.asarray(new["layers"]["attention"]["query"]["kernel"]), np.asarray(expected))


def test_einsum_kernel_axes_errors():
  for equation in ("ab,bc", "ab,bc,cd->ad", "ab,bb->ab", "ab,bcx->ac", "ab,b->a"):
    with pytest.raises(ValueError, match="einsum"):
      pw.einsum_kernel_axes(equation)
