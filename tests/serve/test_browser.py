"""What a person sees in a real browser: headless Chromium (the system's, driven by Playwright) on a real server.

Every request the pages make must go to the server itself: the test fails on any other host. Set
``MLM_SCREENSHOTS=DIR`` to keep a screenshot of each page there.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from benchmarks.common.process import start_server, write_models
from tests.serve.conftest import packaged_entry

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = [pytest.mark.slow, pytest.mark.integration,
              pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed: apt-get install -y chromium")]
# What this machine (no display, no network, root) needs; Playwright adds --headless and the profile directory.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def page_server(packaged_artifact, tmp_path_factory):
    """One model of each task, no API key: MiniLM, a tiny random fill-mask BERT and a tiny random classifier;
    a tiny trained BERT with a token-classification (``tt:verbs``) and a rerank (``tt:rr``) head; a tiny random
    BERT with a sparse-embedding head (``sparse:splade``)."""
    from tests.compress.train.conftest import build_trained
    from tests.conftest import build_tiny
    from tests.serve.apis.conftest import tiny_sparse_artifact

    tmp = tmp_path_factory.mktemp("serve-page")
    models = [packaged_entry("minilm", packaged_artifact("minilm"))]
    for task in ("fill-mask", "classification"):
        build_tiny(tmp / task, "bert", task)
        models.append({"name": f"tiny-{task}", "source": str(tmp / task), "task": task,
                       "recipe": {"method": "fp32"}, "artifact": f"artifacts/tiny-{task}", "serve": {"threads": 1}})
    model_dir, trained = build_trained(tmp / "trained", {"mlm": "mlm", "verbs": "token-classification",
                                                         "rr": "rerank"})
    sparse = tiny_sparse_artifact(tmp)
    models += [{"name": "tt", "source": str(model_dir), "artifact": str(trained), "serve": {"threads": 1},
                "heads": [{"name": "mlm"}, {"name": "verbs"}, {"name": "rr"}]},
               {"name": "sparse", "source": str(sparse), "artifact": str(sparse), "serve": {"threads": 1},
                "heads": [{"name": "mlm"}, {"name": "splade"}]}]
    proc = start_server(write_models(tmp / "models.yaml", models), tmp / "serve.log")
    yield proc
    proc.stop()


@pytest.fixture
def browser(page_server, tmp_path):
    """A Chromium page that records every URL it requests."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=str(CHROMIUM),
                                                        headless=True, args=FLAGS, viewport={"width": 1200,
                                                                                             "height": 900})
        page = context.new_page()
        page.set_default_timeout(30_000)
        requested: list[str] = []
        page.on("request", lambda r: requested.append(r.url))
        yield page
        context.close()
    elsewhere = [u for u in requested if not u.startswith(page_server.url)]
    assert not elsewhere, f"the page loaded from other hosts: {elsewhere}"


def _screenshot(page, name: str) -> None:
    if os.environ.get("MLM_SCREENSHOTS"):
        out = Path(os.environ["MLM_SCREENSHOTS"])
        out.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out / f"{name}.png"), full_page=True)


def test_docs_render_every_operation(page_server, browser):
    browser.goto(f"{page_server.url}/docs")
    browser.wait_for_selector(".opblock-summary-path")  # Swagger UI ran and read /openapi.json
    paths = set(browser.locator(".opblock-summary-path").all_inner_texts())
    assert {"/v1/fill-mask", "/v1/classify", "/v1/embed", "/v1/embeddings", "/v1/models", "/health"} <= {
        p.replace("\u200b", "") for p in paths}  # Swagger UI breaks long paths with zero-width spaces
    assert browser.title() == "mlm-compress serve - Swagger UI"
    _screenshot(browser, "docs")


def test_index_answers_each_task(page_server, browser):
    browser.goto(page_server.url)
    browser.wait_for_selector("section.model >> nth=7")
    sections = browser.locator("section.model").all()
    cards = {s.get_attribute("data-model"): s.get_attribute("data-task") for s in sections}
    assert cards == {"minilm": "embedding", "tiny-fill-mask": "fill-mask", "tiny-classification": "classification",
                     "tt": "fill-mask", "tt:verbs": "token-classification", "tt:rr": "rerank",
                     "sparse": "fill-mask", "sparse:splade": "sparse-embedding"}
    assert browser.locator("section.model form").count() == len(cards)  # no "No form for task"

    fill = browser.locator("section[data-model=tiny-fill-mask]")
    fill.locator("textarea").fill("the market [MASK] profit")
    fill.locator("input[name=top_k]").fill("4")
    fill.get_by_role("button").click()
    rows = fill.locator(".answer table tr")
    rows.nth(3).wait_for()
    assert rows.count() == 4
    scores = [float(s) for s in fill.locator(".answer td.score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)

    classify = browser.locator("section[data-model=tiny-classification]")
    classify.locator("textarea").fill("the bank said sales were up")
    classify.get_by_role("button").click()
    classify.locator(".answer table").wait_for()
    labels = classify.locator(".answer td.name").all_inner_texts()
    assert sorted(labels) == ["LABEL_0", "LABEL_1", "LABEL_2"]
    assert sum(float(s) for s in classify.locator(".answer td.score").all_inner_texts()) == pytest.approx(1, abs=2e-3)

    similar = browser.locator("section[data-model=minilm]")
    similar.get_by_role("button").click()  # the two example sentences: a man eating food, someone eating a meal
    close = float(similar.locator(".cosine").inner_text())
    similar.locator("textarea[name=b]").fill("The stock market fell sharply today.")
    similar.get_by_role("button").click()
    similar.locator(".cosine").filter(has_not_text=f"{close:.4f}").wait_for()
    far = float(similar.locator(".cosine").inner_text())
    assert 0.5 < close <= 1 and far < close - 0.3
    assert not browser.locator(".error").count()
    _screenshot(browser, "index")


def test_index_answers_each_head_task(page_server, browser):
    """Token classification (labelled spans and their table), rerank (a ranked list), sparse embedding (a term
    table), and an error answer shown in the page."""
    browser.goto(page_server.url)
    browser.wait_for_selector("section.model >> nth=7")

    tokens = browser.locator('section[data-model="tt:verbs"]')
    text = "the bank said sales were up"
    tokens.locator("textarea").fill(text)
    tokens.locator("select").select_option("none")
    tokens.locator("input[name=all_labels]").check()  # every token, O too: a table whatever the tiny model learnt
    tokens.get_by_role("button").click()
    rows = tokens.locator(".answer table.entities tr")
    rows.nth(6).wait_for()  # a header and a row per token
    assert tokens.locator(".spans").inner_text() == text  # the text, its spans marked
    assert tokens.locator(".spans mark").count() == rows.count() - 1
    assert set(tokens.locator(".answer td.label").all_inner_texts()) <= {"V", "O"}
    assert all(0 <= float(s) <= 1 for s in tokens.locator(".answer td.score").all_inner_texts())

    rerank = browser.locator('section[data-model="tt:rr"]')
    documents = ["the bank said sales were up", "a cat sat on the mat", "profit at the market"]
    rerank.locator("textarea[name=query]").fill("market bank profit")
    rerank.locator("textarea[name=documents]").fill("\n".join(documents))
    rerank.locator("input[name=top_n]").fill("2")
    rerank.get_by_role("button").click()
    rerank.locator(".answer table tr >> nth=1").wait_for()
    assert rerank.locator(".answer tr").count() == 2
    assert rerank.locator(".answer td.rank").all_inner_texts() == ["1.", "2."]
    assert set(rerank.locator(".answer td.name").all_inner_texts()) <= set(documents)
    scores = [float(s) for s in rerank.locator(".answer td.score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)

    sparse = browser.locator('section[data-model="sparse:splade"]')
    sparse.locator("textarea").fill("the market said profit")
    sparse.locator("input[name=top_k]").fill("5")
    sparse.get_by_role("button").click()
    sparse.locator(".answer table tr >> nth=4").wait_for()
    assert sparse.locator(".answer tr").count() == 5
    weights = [float(s) for s in sparse.locator(".answer td.score").all_inner_texts()]
    assert weights == sorted(weights, reverse=True) and weights[-1] > 0
    assert not browser.locator(".error").count()
    _screenshot(browser, "index-heads")

    rerank.locator("textarea[name=documents]").fill("")  # no documents: the server's 422, shown in the page
    rerank.get_by_role("button").click()
    error = rerank.locator(".answer .error")
    error.wait_for()
    assert error.inner_text().startswith("422: ") and "documents" in error.inner_text()
