"""The command line, run in-process through firstmotion.cli.main."""

from __future__ import annotations

import pytest

from firstmotion import __version__, cli


def all_command_words() -> list[list[str]]:
    words = []
    for name, entry in cli.COMMANDS.items():
        if isinstance(entry, dict):
            words += [[name, sub] for sub in entry]
        else:
            words.append([name])
    return words


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for words in all_command_words():
        assert " ".join(words) in out, f"'{' '.join(words)}' missing from --help"
    for design_command in ("demo", "run", "stream", "worker polarity", "worker associate",
                           "worker mechanism", "worker catalog", "replay", "scenario",
                           "invert", "catalog export", "config check"):  # fmt: skip
        assert design_command in out


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"firstmotion {__version__}"


def test_a_command_not_built_yet_exits_2_and_says_so(monkeypatch, capsys):
    commands = dict(cli.COMMANDS)
    commands["future"] = ("firstmotion.no_such_module_yet", "a stage nobody wrote")
    monkeypatch.setattr(cli, "COMMANDS", commands)
    assert cli.main(["future"]) == cli.NOT_BUILT_EXIT == 2
    err = capsys.readouterr().err
    assert "firstmotion future: not built yet (a stage nobody wrote)" in err


def test_unknown_subcommand_exits_2_listing_the_choices(capsys):
    assert cli.main(["worker", "teleport"]) == 2
    err = capsys.readouterr().err
    assert "expected one of {polarity, associate, mechanism, catalog, stress}" in err


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["teleport"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_a_broken_import_inside_a_built_command_is_not_hidden(monkeypatch, tmp_path):
    # the module exists, but something it imports does not: that is a bug, not "not built"
    (tmp_path / "fm_cli_broken_module.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    commands = dict(cli.COMMANDS)
    commands["broken"] = ("fm_cli_broken_module", "broken on purpose")
    monkeypatch.setattr(cli, "COMMANDS", commands)
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_xyz"):
        cli.main(["broken"])


@pytest.mark.parametrize("words", all_command_words(), ids=" ".join)
def test_every_command_has_help_or_says_not_built(words, capsys):
    try:
        code = cli.main([*words, "--help"])
    except SystemExit as exc:  # argparse --help of a built command
        code = exc.code
        assert code == 0
        assert f"usage: firstmotion {' '.join(words)}" in capsys.readouterr().out
        return
    assert code == 2
    assert "not built yet" in capsys.readouterr().err


def test_bad_config_in_a_stage_exits_1_with_the_message_not_a_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[seedlink]\nsever = "localhost:18000"\n')
    rc = cli.main(["worker", "mechanism", "--config", str(bad), "--drain"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "seedlink.sever" in err and "server" in err
    assert "Traceback" not in err
