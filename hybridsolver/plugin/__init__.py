"""TorchScript plugin artifacts (DESIGN.md section 6).

- :mod:`~hybridsolver.plugin.manifest`: the manifest's keys and checks, :class:`PluginError`;
- :mod:`~hybridsolver.plugin.artifact`: reading, hashing, loading, exporting artifacts and the
  registry of named plugins;
- :mod:`~hybridsolver.plugin.build`: :func:`build_manifest`, a manifest from the case it runs in;
- :mod:`~hybridsolver.plugin.tracing`: exporting a module TorchScript cannot script, by tracing;
- :mod:`~hybridsolver.plugin.contract`: checks of an artifact against a case and of its dry run;
- :mod:`~hybridsolver.plugin.hook`: :class:`ArtifactHook`, an artifact in the step loop;
- :mod:`~hybridsolver.plugin.resident`: device-resident rollouts of emulators and refiners.
"""
from .artifact import content_sha256, describe, export, load_module, read_artifact, registered, resolve
from .build import build_manifest
from .hook import ArtifactHook, plugin_hooks
from .manifest import PluginError, validate_manifest

__all__ = ["ArtifactHook", "PluginError", "build_manifest", "content_sha256", "describe", "export", "load_module",
           "plugin_hooks", "read_artifact", "registered", "resolve", "validate_manifest"]
