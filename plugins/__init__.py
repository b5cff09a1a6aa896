"""Plugin families of hybridsolver (installed as ``hybridsolver_plugins``)."""
