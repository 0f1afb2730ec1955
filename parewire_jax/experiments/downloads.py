"""Downloads of the datasets' files: where from, and only verified files land in place.

:data:`SOURCES` names each downloadable dataset's files, their published MD5
checksums and the mirrors that serve them. :func:`download` streams a file to
a temporary name in the target directory, checks its MD5 and lets the caller
parse it, and only then renames it into place; a file that fails either check
is deleted and the next mirror is tried. ``$PAREWIRE_DATA_URL`` replaces the
mirrors by one base URL laid out like the data directory
(``$PAREWIRE_DATA_URL/<name>/<file>``).
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import pathlib
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Sequence
from typing import NamedTuple

DATA_URL_ENV = "PAREWIRE_DATA_URL"


class RemoteFile(NamedTuple):
  """One downloadable file and its published MD5 checksum."""

  name: str
  md5: str


class Source(NamedTuple):
  """Where a dataset's files can be downloaded: base URLs tried in order."""

  mirrors: tuple[str, ...]
  files: tuple[RemoteFile, ...]


class DownloadError(OSError):
  """Every mirror failed to deliver a file that matches its checksum and parses.

  Nothing is cached then; the message names every mirror's failure.

  >>> issubclass(DownloadError, OSError)
  True
  """


# The MD5s are the ones published with the datasets (and used by torchvision).
SOURCES: dict[str, Source] = {
  "mnist": Source(
    mirrors=(
      "https://ossci-datasets.s3.amazonaws.com/mnist/",
      "http://yann.lecun.com/exdb/mnist/",
    ),
    files=(
      RemoteFile("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
      RemoteFile("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
      RemoteFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
      RemoteFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    ),
  ),
  "fashion_mnist": Source(
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    files=(
      RemoteFile("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
      RemoteFile("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
      RemoteFile("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
      RemoteFile("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
    ),
  ),
  "cifar10": Source(
    mirrors=("https://www.cs.toronto.edu/~kriz/",),
    files=(RemoteFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),),
  ),
}

_DOWNLOAD_TIMEOUT_S = 60
_CHUNK_BYTES = 1 << 20
# Errors a mirror can produce: network (OSError, incl. URLError and timeouts),
# protocol (IncompleteRead), a bad checksum or an unparsable file (ValueError).
_MIRROR_ERRORS = (OSError, http.client.HTTPException, ValueError)


def dataset_mirrors(name: str) -> tuple[str, ...]:
  """Base URLs of dataset ``name``'s files: ``$PAREWIRE_DATA_URL/<name>/`` if set, else its :data:`SOURCES` mirrors."""
  base = os.environ.get(DATA_URL_ENV)
  if base:
    return (f"{base.rstrip('/')}/{name}/",)
  return SOURCES[name].mirrors


def _fetch(url: str, out: io.BufferedIOBase) -> str:
  """Streams ``url`` into ``out``; returns the MD5 of what arrived."""
  digest = hashlib.md5(usedforsecurity=False)
  request = urllib.request.Request(url, headers={"User-Agent": "parewire_jax"})
  with urllib.request.urlopen(request, timeout=_DOWNLOAD_TIMEOUT_S) as response:
    announced = response.headers.get("Content-Length")
    received = 0
    while chunk := response.read(_CHUNK_BYTES):
      out.write(chunk)
      digest.update(chunk)
      received += len(chunk)
  if announced is not None and received != int(announced):
    raise ValueError(f"truncated: received {received} of {announced} bytes")
  return digest.hexdigest()


def download(
  remote: RemoteFile, mirrors: Sequence[str], directory: pathlib.Path, validate: Callable[[pathlib.Path], object]
) -> pathlib.Path:
  """Downloads ``remote`` into ``directory``, trying ``mirrors`` in order.

  The file lands under its final name only after its MD5 matches and
  ``validate`` parses it (raising ``ValueError`` if it cannot); otherwise the
  partial file is deleted.

  Raises:
    DownloadError: no mirror delivered a file that passes both checks.
  """
  directory.mkdir(parents=True, exist_ok=True)
  target = directory / remote.name
  failures = []
  for base in mirrors:
    url = base.rstrip("/") + "/" + remote.name
    print(f"parewire_jax: downloading {url} -> {target}", file=sys.stderr)
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{remote.name}.", suffix=".part")
    tmp = pathlib.Path(tmp_name)
    try:
      with os.fdopen(fd, "wb") as out:
        md5 = _fetch(url, out)
      if md5 != remote.md5:
        raise ValueError(f"MD5 {md5} does not match the published {remote.md5}")
      validate(tmp)
      os.replace(tmp, target)
      return target
    except _MIRROR_ERRORS as e:
      failures.append(f"  {url}: {type(e).__name__}: {e}")
    finally:
      tmp.unlink(missing_ok=True)
  raise DownloadError(f"could not download {remote.name} into {directory}; nothing was cached:\n" + "\n".join(failures))
