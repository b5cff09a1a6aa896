"""``--set`` overrides of case keys: parsing ``KEY=VALUE`` options and applying dotted keys
to a raw case dict (an override of one of a pair of alternative keys replaces the other)."""
import tomllib

from .errors import CaseError


def _parse_value(text):
    """A ``--set`` value: any TOML value (number, string, bool, array, inline table), else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


# pairs of keys of one table that are alternatives (table, key, key; "plugins.N" for every
# [[plugins]] entry): an override of one drops the other, unless the same overrides set
# both (which validation then refuses)
ALTERNATIVES = (("time", "t_end", "steps"), ("plugins.N", "every", "interval"), ("reference", "dir", "path"),
                ("monitor", "bounds", "reference_sigmas"))


def _drops_alternative(parts, overrides):
    """The alternative key an override of ``parts`` (a dotted key, split) replaces, or None."""
    table = "plugins.N" if len(parts) == 3 and parts[0] == "plugins" else ".".join(parts[:-1])
    for pair_table, *pair in ALTERNATIVES:
        if pair_table == table and parts[-1] in pair:
            other = pair[1 - pair.index(parts[-1])]
            return None if ".".join(parts[:-1] + [other]) in overrides else other
    return None


def apply_overrides(raw, overrides):
    """Set dotted keys (``a.b``, ``plugins.0.every``) in a raw case dict, in place.  An
    override of one of a pair of alternatives (``time.t_end``/``time.steps``,
    ``plugins.N.every``/``interval``, ``reference.dir``/``path``, ``monitor.bounds``/
    ``reference_sigmas``) replaces the other."""
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        if not all(parts):
            raise CaseError(f"--set {dotted}: malformed key")
        node = raw
        for i, part in enumerate(parts[:-1]):
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise CaseError(f"--set {dotted}: no list item {part} in {'.'.join(parts[:i])}")
                node = node[int(part)]
            else:
                node = node.setdefault(part, {})
            if not isinstance(node, (dict, list)):
                raise CaseError(f"--set {dotted}: {'.'.join(parts[:i + 1])} is not a table")
        if isinstance(node, list):
            if not parts[-1].isdigit() or int(parts[-1]) >= len(node):
                raise CaseError(f"--set {dotted}: no list item {parts[-1]}")
            node[int(parts[-1])] = value
        else:
            node[parts[-1]] = value
            node.pop(_drops_alternative(parts, overrides), None)
    return raw


def parse_set_options(items):
    """``["a.b=1", ...]`` from the command line -> {"a.b": 1}."""
    out = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise CaseError(f"--set {item}: expected KEY=VALUE")
        out[key.strip()] = _parse_value(text.strip())
    return out
