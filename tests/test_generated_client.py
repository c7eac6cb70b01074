"""A client generated from /openapi.json works: what a site's Python users do with the API.

`openapi-python-client` generates a package from the document the demo server
serves, without one warning (a warning means an operation or a model it left
out), and that package logs in, lists with a filter, creates, changes a row
with `If-Match` and reads the API's errors, against the running demo.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from .servers import demo_server

PACKAGE = "ispyb_generated_client"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The demo server's base URL, its document, and the generator's output on it."""
    directory = tmp_path_factory.mktemp("generated-client")
    with demo_server(directory) as (base, _):
        with urllib.request.urlopen(base + "/openapi.json") as r:
            text = r.read().decode()
        (directory / "openapi.json").write_text(text)
        # The generator formats what it writes with ruff, which it looks for on PATH.
        env = {
            **os.environ,
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
        }
        generated = subprocess.run(
            [
                sys.executable,
                "-m",
                "openapi_python_client",
                "generate",
                "--path",
                str(directory / "openapi.json"),
                "--output-path",
                str(directory / PACKAGE),
                "--meta",
                "none",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        sys.path.insert(0, str(directory))
        try:
            yield base, json.loads(text), generated
        finally:
            sys.path.remove(str(directory))
            for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
                del sys.modules[name]


def generated(module: str):
    return importlib.import_module(f"{PACKAGE}.{module}")


def snake(name: str) -> str:
    """An operationId as the generator names its module (`listBLSample` -> `list_bl_sample`)."""
    return re.sub(
        r"([a-z0-9])([A-Z])", r"\1_\2", re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    ).lower()


def test_the_generator_reads_the_document_without_a_warning(served):
    _, document, run = served
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "warning" not in output.lower(), output
    for ops in document["paths"].values():
        for op in ops.values():
            tag, name = op["tags"][0], snake(op["operationId"])
            assert (Path(generated("api").__file__).parent / tag / f"{name}.py").is_file(), name


def test_a_generated_client_logs_in_lists_creates_changes_and_reads_errors(served):
    base, _, run = served
    assert run.returncode == 0, run.stdout + run.stderr
    client_module = generated("client")
    models = generated("models")
    login, whoami = generated("api.auth.login"), generated("api.auth.whoami")
    get_proposal = generated("api.proposals.get_proposal")
    list_protein = generated("api.shipping.list_protein")
    create_protein = generated("api.shipping.create_protein")
    get_protein = generated("api.shipping.get_protein")
    patch_protein = generated("api.shipping.patch_protein")
    delete_protein = generated("api.shipping.delete_protein")

    anonymous = client_module.Client(base_url=base)
    token = login.sync(client=anonymous, body=models.Credentials(login="pi_anna", password="demo"))
    assert isinstance(token, models.Token) and token.login == "pi_anna"
    anna = client_module.AuthenticatedClient(base_url=base, token=token.token)
    assert whoami.sync(client=anna).login == "pi_anna"

    mx1001 = get_proposal.sync(client=anna, id="mx1001")
    assert isinstance(mx1001, models.ProposalRow) and mx1001.proposal_code == "mx"

    processing = generated("api.processing.get_data_collections_processing")
    (first,) = processing.sync(client=anna, data_collection_id="1").results
    assert isinstance(first, models.DataCollectionProcessing) and first.data_collection_id == 1
    assert {p.processing_programs for p in first.programs} == {"xia2 dials", "autoPROC"}
    best = {p.processing_programs: p.best for p in first.programs}["autoPROC"]
    assert isinstance(best, models.ProcessingResult) and best.space_group == "P43212"
    assert best.overall.resolution_limit_high < best.inner_shell.resolution_limit_high

    name = f"Generated client {uuid.uuid4().hex[:8]}"
    created = create_protein.sync_detailed(
        client=anna,
        body=models.Protein(proposal_id=mx1001.proposal_id, name=name, acronym="gen"),
    )
    assert created.status_code == 201, created.content
    protein = created.parsed
    assert isinstance(protein, models.ProteinRow) and protein.name == name
    assert created.headers["Location"].endswith(f"/proteins/{protein.protein_id}")

    page = list_protein.sync(
        client=anna,
        proposal="mx1001",
        filters=models.ListProteinFilters.from_dict({"name[like]": name[-8:], "acronym": "gen"}),
    )
    assert isinstance(page, models.ProteinList)
    assert [p.protein_id for p in page.results] == [protein.protein_id] and page.total == 1

    pid = str(protein.protein_id)
    read = get_protein.sync_detailed(client=anna, id=pid)
    etag = read.headers["ETag"]
    changed = patch_protein.sync_detailed(
        client=anna, id=pid, body=models.ProteinPatch(acronym="gen2"), if_match=etag
    )
    assert changed.status_code == 200, changed.content
    assert changed.parsed.acronym == "gen2" and changed.parsed.name == name  # the rest kept

    stale = patch_protein.sync_detailed(
        client=anna, id=pid, body=models.ProteinPatch(acronym="gen3"), if_match=etag
    )
    assert stale.status_code == 412
    assert isinstance(stale.parsed, models.Error) and stale.parsed.title.startswith("412")
    assert get_protein.sync(client=anna, id=pid).acronym == "gen2"

    typo = list_protein.sync_detailed(
        client=anna, filters=models.ListProteinFilters.from_dict({"nmae": "x"})
    )
    assert typo.status_code == 400 and typo.parsed.parameter == "nmae"

    refused = delete_protein.sync_detailed(client=anna, id=pid)
    assert refused.status_code == 403 and isinstance(refused.parsed, models.Error)
    admin_token = login.sync(
        client=anonymous, body=models.Credentials(login="admin1", password="x")
    )
    admin = client_module.AuthenticatedClient(base_url=base, token=admin_token.token)
    current = get_protein.sync_detailed(client=admin, id=pid).headers["ETag"]
    assert delete_protein.sync_detailed(client=admin, id=pid, if_match=current).status_code == 204
    missing = get_protein.sync_detailed(client=anna, id=pid)
    assert missing.status_code == 404 and missing.parsed.title.startswith("404")


def test_a_generated_client_embeds_related_rows(served):
    """`embed=` as a list of the route's names; embedded rows parse as the parent's model."""
    base, _, run = served
    assert run.returncode == 0, run.stdout + run.stderr
    client_module, models = generated("client"), generated("models")
    login = generated("api.auth.login")
    list_samples = generated("api.shipping.list_bl_sample")
    get_sample = generated("api.shipping.get_bl_sample")
    token = login.sync(
        client=client_module.Client(base_url=base),
        body=models.Credentials(login="pi_anna", password="demo"),
    )
    anna = client_module.AuthenticatedClient(base_url=base, token=token.token)

    page = list_samples.sync(
        client=anna,
        proposal="mx1001",
        limit=3,
        embed=[models.ListBlSampleEmbedItem.PROTEIN, models.ListBlSampleEmbedItem.DATACOLLECTIONS],
    )
    assert isinstance(page, models.BLSampleList) and len(page.results) == 3
    first = page.results[0]
    assert isinstance(first.protein, models.ProteinRow) and first.protein.acronym == "lyso"
    assert isinstance(first.data_collections, int)

    one = get_sample.sync(
        client=anna, id=str(first.bl_sample_id), embed=[models.GetBlSampleEmbedItem.CRYSTAL]
    )
    assert isinstance(one.crystal, models.CrystalRow)
    assert one.crystal.crystal_id == first.crystal_id
