"""Every Bicep file parses, and modules, parameter files and embedded files fit together.

There is no Bicep CLI here, so these checks stand in for `bicep build`: pycep parses each file, and
the references between files (module paths and parameters, parameter files, loadTextContent) are
resolved by hand.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.infra.bicep import INFRA, MAIN, REPO, bicep_files, body, loaded_files, parameters, parse, required_parameters

BICEP_FILES = bicep_files()
PARAM_FILES = sorted(INFRA.glob("*.bicepparam"))


def _id(path: Path) -> str:
    return str(path.relative_to(REPO))


def test_infra_has_the_expected_files() -> None:
    """main.bicep, its modules, both environment parameter files and the azd parameter file exist."""
    assert MAIN in BICEP_FILES
    assert len([path for path in BICEP_FILES if path.parent.name == "modules"]) >= 10
    assert [path.name for path in PARAM_FILES] == ["main.dev.bicepparam", "main.prod.bicepparam"]
    assert (INFRA / "main.parameters.json").is_file()


@pytest.mark.parametrize("path", BICEP_FILES, ids=_id)
def test_bicep_file_parses(path: Path) -> None:
    """pycep parses the file (a syntax error would also make checkov skip it silently)."""
    parsed = parse(path)
    assert parsed.get("resources") or parsed.get("modules"), "a Bicep file here should declare something"


@pytest.mark.parametrize("path", BICEP_FILES, ids=_id)
def test_modules_exist_and_get_exactly_their_parameters(path: Path) -> None:
    """Each module call points at a file, passes only parameters it declares and all it requires."""
    for symbol, module in parse(path).get("modules", {}).items():
        target = (path.parent / module["detail"]["path"]).resolve()
        assert target.is_file(), f"{symbol}: {target} is missing"
        passed = set(body(module["config"]).get("params", {}))
        declared = set(parameters(target))
        assert passed <= declared, f"{symbol}: unknown parameters {sorted(passed - declared)}"
        missing = required_parameters(target) - passed
        assert not missing, f"{symbol}: required parameters not passed {sorted(missing)}"


@pytest.mark.parametrize("path", BICEP_FILES, ids=_id)
def test_embedded_files_exist(path: Path) -> None:
    """Files embedded with loadTextContent/loadJsonContent exist (the Bicep CLI would fail otherwise)."""
    for target in loaded_files(path):
        assert target.is_file(), f"{path.name} loads {target}, which is missing"


def _bicepparam_values(path: Path) -> set[str]:
    text = path.read_text()
    assert re.search(r"^using '\./main\.bicep'$", text, re.MULTILINE), f"{path.name} must use ./main.bicep"
    return set(re.findall(r"^param\s+(\w+)\s*=", text, re.MULTILINE))


@pytest.mark.parametrize("path", PARAM_FILES, ids=_id)
def test_bicepparam_sets_only_declared_parameters_and_every_required_one(path: Path) -> None:
    """A parameter file may not set an unknown parameter or leave a required one out."""
    values = _bicepparam_values(path)
    declared = set(parameters(MAIN))
    assert values <= declared, f"unknown parameters {sorted(values - declared)}"
    assert required_parameters(MAIN) <= values, f"missing {sorted(required_parameters(MAIN) - values)}"


def test_azd_parameter_file_matches_main() -> None:
    """infra/main.parameters.json (read by azd) only names declared parameters and sets the required ones."""
    document = json.loads((INFRA / "main.parameters.json").read_text())
    values = set(document["parameters"])
    declared = set(parameters(MAIN))
    assert values <= declared, f"unknown parameters {sorted(values - declared)}"
    assert required_parameters(MAIN) <= values, f"missing {sorted(required_parameters(MAIN) - values)}"


def test_parameter_files_never_hold_a_secret_value() -> None:
    """The consent hash key only ever comes from the environment, never from a committed file."""
    for path in [*PARAM_FILES, INFRA / "main.parameters.json"]:
        for line in path.read_text().splitlines():
            if "consentHashKey" in line and "=" in line and path.suffix == ".bicepparam":
                assert "readEnvironmentVariable('CONSENT_HASH_KEY'" in line, line
    document = json.loads((INFRA / "main.parameters.json").read_text())
    assert document["parameters"]["consentHashKey"]["value"] == "${CONSENT_HASH_KEY=}"


def test_azure_yaml_drives_this_template_and_its_hooks_exist() -> None:
    """azure.yaml provisions infra/main.bicep, deploys service api as a function, and runs existing hooks."""
    text = (REPO / "azure.yaml").read_text()
    assert re.search(r"^  path: infra$", text, re.MULTILINE)
    assert re.search(r"^  module: main$", text, re.MULTILINE)
    assert re.search(r"^  api:\n    project: \.\n    language: python\n    host: function$", text, re.MULTILINE)
    assert "'azd-service-name': 'api'" in (INFRA / "modules" / "functionapp.bicep").read_text()
    scripts = re.findall(r"run: (\./\S+)", text)
    assert len(scripts) == 3
    for script in scripts:
        path = REPO / script
        assert path.is_file(), script
        assert os.access(path, os.X_OK), f"{script} must be executable"
