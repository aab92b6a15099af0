"""Every bad data file gets a one-line error that names the file, the line and what was expected, and
nothing is written."""

from __future__ import annotations

import pytest

from compress.cli import main

GOOD = '{"text": "the market", "label": "money"}\n{"text": "the film", "label": "other"}\n' * 4

CASES = {
    "not json": ("classification", "a.jsonl", GOOD + "{text: 1}\n", "a.jsonl:9: not valid JSON"),
    "not an object": ("classification", "a.jsonl", GOOD + '["the", "money"]\n', "a.jsonl:9: expected a JSON object"),
    "no label": ("classification", "a.jsonl", GOOD + '{"text": "a bank"}\n', "a.jsonl:9: no 'label'"),
    "pair where a text was expected": ("classification", "a.jsonl", GOOD + '{"text": ["a", "b"], "label": "money"}\n',
                                       "a.jsonl:9: 'text' holds a list where a text was expected; a text pair"),
    "empty text": ("classification", "a.jsonl", GOOD + '{"text": " ", "label": "money"}\n',
                   "a.jsonl:9: 'text' must be a non-empty text"),
    "empty file": ("classification", "a.jsonl", "\n\n", "a.jsonl is empty"),
    "one label only": ("classification", "a.jsonl", '{"text": "x y", "label": "a"}\n' * 5, "two or more labels"),
    "csv columns": ("classification", "a.csv", "text,label\nthe market,money\nthe film,other,extra\n",
                    "a.csv:3: 3 columns where the header has 2"),
    "csv without header": ("classification", "a.csv", "\n", "a.csv:1: expected a header row"),
    "tokens and labels differ": ("token-classification", "t.jsonl",
                                 '{"tokens": ["a", "b"], "labels": ["O", "V"]}\n' * 4
                                 + '{"tokens": ["a", "b"], "labels": ["O"]}\n', "t.jsonl:5: 2 tokens but 1 labels"),
    "rerank without passage": ("rerank", "r.jsonl", '{"query": "q", "positive": "p"}\n' * 3 + '{"query": "q"}\n',
                               "r.jsonl:4: no 'positive'"),
    "rerank bad score": ("rerank", "r.jsonl", '{"query": "q", "passage": "p", "label": "yes"}\n',
                         "r.jsonl:1: \"label\" must be a relevance score"),
    "unknown suffix": ("classification", "a.xml", "<a/>", "unknown data format '.xml'"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_file_gets_one_line_and_nothing_is_written(case, tiny, tmp_path, capsys):
    kind, name, content, expected = CASES[case]
    path = tmp_path / name
    path.write_text(content)
    out = tmp_path / "out"
    code = main(["train", str(tiny("bert", "fill-mask")), "--task", f"t:{kind}:{path}", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len([line for line in err if line.startswith("error:")]) == 1
    assert expected in err[-1]
    assert not out.exists()
    assert not list(tmp_path.glob(".out*"))  # no staging directory, no checkpoint


def test_an_unknown_label_in_the_held_out_file(tiny, tmp_path, capsys):
    train, held = tmp_path / "a.jsonl", tmp_path / "h.jsonl"
    train.write_text(GOOD)
    held.write_text('{"text": "the bank", "label": "money"}\n{"text": "a play", "label": "arts"}\n')
    code = main(["train", str(tiny("bert", "fill-mask")), "--task", f"t:classification:{train}",
                 "--held-out", f"t={held}", "--out", str(tmp_path / "out")])
    assert code == 2
    assert "h.jsonl:2: unknown label 'arts'; the training data's labels are money, other" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("args", "expected"), [
    (["--task", "t:sentiment:x.jsonl"], "unknown kind 'sentiment'"),
    (["--task", "t:classification"], "write NAME:KIND:FILE"),
    (["--task", "t:mlm", "--task", "t:mlm"], "task names must be unique"),
    (["--task", "t:mlm", "--held-out", "u=x.jsonl"], "no --task is named 'u'"),
    (["--task", "t:mlm", "--keep-heads", "t"], "trained as tasks"),
])
def test_bad_flags(args, expected, tiny, tmp_path, capsys):
    assert main(["train", str(tiny("bert", "fill-mask")), *args, "--out", str(tmp_path / "out")]) == 2
    assert expected in capsys.readouterr().err


def test_an_existing_out_is_kept_without_force(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    path = tmp_path / "a.jsonl"
    path.write_text(GOOD)
    assert main(["train", str(tiny("bert", "fill-mask")), "--task", f"t:classification:{path}", "--out",
                 str(out)]) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
