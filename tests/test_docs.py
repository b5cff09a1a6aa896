"""The documentation covers the case schema: every key of hybridsolver.case is on a docs page."""
import os
import re

import pytest

from hybridsolver import case

CASES = os.path.join(os.path.dirname(__file__), os.pardir, "cases")
DOCS = os.path.join(os.path.dirname(__file__), os.pardir, "docs")
PAGES = ("cases.md", "equations.md", "ensembles.md", "plugins.md")


def schema_keys():
    """(table, key) of every case key: sections, plugin entries, each equation's, the
    forcing, obstacle, inflow and initial-condition tables'."""
    keys = [(s, k) for s, table in case.SECTIONS.items() for k in table]
    keys += [("plugins.N", k) for k in case.PLUGIN_KEYS]
    keys += [(f"equation ({e})", k) for e, table in case.EQUATION_KEYS.items() for k in table]
    for name, kinds in (("forcing", case.FORCINGS), ("obstacle", case.OBSTACLES), ("inflow", case.INFLOWS),
                        ("initial_condition", case.INITIAL_CONDITIONS)):
        keys += [(f"{name} ({kind})", k) for kind, table in kinds.items() for k in table]
    return keys + [("stochastic_forcing", k) for k in case.STOCHASTIC_FORCING]


@pytest.fixture(scope="module")
def text():
    return "\n".join(open(os.path.join(DOCS, page)).read() for page in PAGES)


@pytest.mark.parametrize("table, key", schema_keys())
def test_every_case_key_is_documented(text, table, key):
    """As a TOML key (``key =``, in a case block) or named in code (``key`` or ``section.key``)."""
    assert re.search(rf"(^|[\s#{{,`]){key}\s*=", text, re.M) or re.search(rf"`([a-z_.]*\.)?{key}`", text), (table, key)


@pytest.mark.parametrize("name", sorted(f for f in os.listdir(CASES) if f.endswith(".toml")))
def test_every_shipped_case_loads_and_is_in_the_cases_table(name):
    case.load_case(os.path.join(CASES, name))  # the schema (files and plugins are checked by validate)
    assert f"`{name}`" in open(os.path.join(DOCS, "cases.md")).read()
