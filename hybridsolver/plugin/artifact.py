"""Plugin artifact files: content hash, checked reading, loading, export, the registry.

An artifact is one TorchScript archive with an embedded JSON manifest
(``torch.jit.save(module, path, _extra_files={"hybridsolver.json": manifest})``,
DESIGN.md section 6; keys in :mod:`hybridsolver.plugin.manifest`).  The manifest's
``sha256`` covers the archive's code, constants and weights: every entry but the
manifest itself and torch's serialization id, which hashes the whole file
(:func:`content_sha256`).  Files are refused before anything is unpickled unless they
are zip archives holding TorchScript code.
"""
import contextlib
import hashlib
import importlib.metadata
import io
import json
import os
import warnings
import zipfile
import zlib

from .contract import check_signature
from .manifest import MANIFEST, PluginError, validate_manifest

ENTRY_POINT_GROUP = "hybridsolver.plugins"



def _entry_name(info):
    """Archive entry name without torch's top folder (which follows the file name)."""
    return info.filename.split("/", 1)[-1]


def content_sha256(archive):
    """sha256 over the entries of a zip archive (bytes or path), manifest and torch's
    serialization id (a hash of all entries, manifest included) excluded.

    Entries are taken in name order, each as its name (without the top folder), a
    NUL byte and its uncompressed content.
    """
    with zipfile.ZipFile(io.BytesIO(archive) if isinstance(archive, bytes) else archive) as zf:
        return _digest(zf)


def _digest(zf):
    """:func:`content_sha256` of an open ``zipfile.ZipFile``."""
    digest = hashlib.sha256()
    for info in sorted(zf.infolist(), key=_entry_name):
        name = _entry_name(info)
        if name in (f"extra/{MANIFEST}", ".data/serialization_id"):
            continue
        digest.update(name.encode() + b"\0")
        digest.update(zf.read(info))
    return digest.hexdigest()


def read_artifact(path):
    """Check that ``path`` is a TorchScript archive and return its manifest (dict).

    Refuses, with :class:`PluginError`, pickles, ``torch.save`` archives, truncated or
    corrupt files, missing or malformed manifests and sha256 mismatches.  Nothing is
    unpickled here.
    """
    if not os.path.isfile(path):
        raise PluginError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(2)
    if head[:1] == b"\x80" and head[1:2] and head[1] <= 5:
        raise PluginError(f"{path}: a pickle file, not a TorchScript archive (hybridsolver never unpickles)")
    if not zipfile.is_zipfile(path):
        raise PluginError(f"{path}: not a TorchScript archive (truncated, or not a zip file)")
    try:
        with zipfile.ZipFile(path) as zf:
            names = {_entry_name(i) for i in zf.infolist()}
            if not any(n.startswith("code/") for n in names):
                raise PluginError(f"{path}: a zip archive without TorchScript code (a torch.save pickle?); "
                                  "hybridsolver loads only torch.jit.save archives")
            if f"extra/{MANIFEST}" not in names:
                raise PluginError(f"{path}: no {MANIFEST} manifest (export it with hybridsolver.plugin.export)")
            top = zf.infolist()[0].filename.split("/", 1)[0]
            text = zf.read(f"{top}/extra/{MANIFEST}")
            sha = _digest(zf)
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError) as exc:
        raise PluginError(f"{path}: corrupt TorchScript archive ({exc})") from None
    try:
        manifest = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PluginError(f"{path}: {MANIFEST} is not valid JSON ({exc})") from None
    validate_manifest(manifest, path)
    if manifest["sha256"] != sha:
        raise PluginError(f"{path}: sha256 mismatch: manifest says {manifest['sha256'][:16]}..., "
                          f"archive content is {sha[:16]}...")
    return manifest


@contextlib.contextmanager
def _torchscript():
    """Silence torch's deprecation warnings for TorchScript, the artifact format of DESIGN.md section 6."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*torch.jit")
        yield


def load_module(path):
    """The TorchScript module of a checked artifact, on the CPU, in eval mode."""
    import torch

    try:
        with _torchscript():
            module = torch.jit.load(path, map_location="cpu")
    except RuntimeError as exc:
        raise PluginError(f"{path}: TorchScript could not load it ({str(exc).splitlines()[0]})") from None
    return module.eval()


def export(module, manifest, path, example=None):
    """Save ``module`` (scripted if needed) with ``manifest`` as an artifact at ``path``.

    A module TorchScript cannot script is traced instead when ``example`` is given: its
    forward then takes the input ``x`` (``example``, a tensor shaped as the host passes
    it), or ``(x, noise)`` for a stochastic manifest (``example = (x, [noise tensors])``),
    and is checked against the eager module (:func:`hybridsolver.plugin.tracing.trace_for_export`).

    Fills in ``sha256``, validates the manifest (and the module's ``forward`` against its
    ``state``: :func:`hybridsolver.plugin.contract.check_signature`), writes the file atomically and loads
    it back through :func:`read_artifact` and :func:`load_module`.  Returns the manifest
    as written.
    """
    import torch

    where = f"export {path}"
    manifest = {k: v for k, v in manifest.items() if k != "sha256"}
    validate_manifest(manifest, where, with_sha=False)
    with _torchscript():
        if example is not None:
            from .tracing import trace_for_export

            module = torch.jit.script(trace_for_export(module, example, manifest, where))
        elif not isinstance(module, torch.jit.ScriptModule):
            try:
                module = torch.jit.script(module)
            except Exception as exc:  # TorchScript's frontend raises several kinds
                raise PluginError(f"{where}: TorchScript cannot script the module ({str(exc).splitlines()[0]}); "
                                  "pass example= (an input tensor) to export it by tracing") from None
        check_signature(module, manifest, where)
        buffer = io.BytesIO()
        torch.jit.save(module, buffer, _extra_files={MANIFEST: json.dumps(manifest)})
        manifest["sha256"] = content_sha256(buffer.getvalue())
        buffer = io.BytesIO()
        torch.jit.save(module, buffer, _extra_files={MANIFEST: json.dumps(manifest, indent=1)})
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(buffer.getvalue())
    os.replace(tmp, path)
    written = read_artifact(path)
    load_module(path)
    return written


def registered():
    """{name: entry point} of the ``hybridsolver.plugins`` entry-point group."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def resolve(path_or_name, case_dir=None):
    """The file of a plugin given as a path, a registered name, or a path relative to the
    case file's folder (tried in that order)."""
    if os.path.isfile(path_or_name):
        return path_or_name
    entry = registered().get(path_or_name)
    if entry is not None:
        target = entry.load()
        return os.fspath(target() if callable(target) else target)
    if case_dir and os.path.isfile(os.path.join(case_dir, path_or_name)):
        return os.path.join(case_dir, path_or_name)
    known = ", ".join(sorted(registered())) or "none"
    raise PluginError(f"{path_or_name}: no such file or registered plugin (registered: {known})")



def describe(path):
    """A readable multi-line description of an artifact (``hybridsolver plugins inspect``)."""
    manifest = read_artifact(path)
    state = manifest.get("state", [])
    carried = ", ".join(f"{e['name']} {e['shape']} {e['dtype']}" for e in state) if state else "none (stateless)"
    lines = [f"{path}: {manifest['name']} {manifest['version']} ({manifest['kind']}, callsite "
             f"{manifest['callsite']}), sha256 verified; state per member: {carried}", json.dumps(manifest, indent=2)]
    return "\n".join(lines)

