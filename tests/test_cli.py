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


def test_a_stage_given_a_reversal_file_of_the_wrong_form_exits_2_saying_why(tmp_path, capsys):
    reversals = tmp_path / "reversals.csv"
    reversals.write_text("station,start_time\nX,2020-01-01\n")
    config = tmp_path / "f.toml"
    config.write_text(f'[mechanism]\nreversals_file = "{reversals.name}"\n')
    rc = cli.main(["worker", "mechanism", "--config", str(config), "--redis",
                   "redis://127.0.0.1:1/0", "--drain"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert f"mechanism.reversals_file: {reversals}: CSV reversal file needs column" in err


def test_a_missing_input_file_exits_2_naming_it_not_a_traceback(tmp_path, capsys):
    missing = tmp_path / "no_such_picks.jsonl"
    rc = cli.main(["invert", "--input", str(missing), "--output", str(tmp_path / "m.jsonl")])
    err = capsys.readouterr().err
    assert rc == cli.INPUT_ERROR_EXIT == 2
    assert f"firstmotion invert: {missing}: No such file or directory" in err


def test_an_input_of_the_wrong_form_exits_2_saying_where(tmp_path, capsys):
    notes = tmp_path / "notes.jsonl"
    notes.write_text('{"event_id": "e1", "picks": []}\nthis is not JSON\n')
    rc = cli.main(["invert", "--input", str(notes), "--output", str(tmp_path / "m.jsonl")])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"{notes}:2: not JSON" in err and "skhash-csv" in err
    words = tmp_path / "words.jsonl"
    words.write_text('{"event_id": "e1", "picks": [{"azimuth_deg": "north", '
                     '"takeoff_deg": 90, "polarity": 1}]}\n')  # fmt: skip
    assert cli.main(["invert", "--input", str(words), "--output", str(tmp_path / "m.jsonl")]) == 2
    assert "event e1: 'azimuth_deg' must be numbers" in capsys.readouterr().err


def test_reprocess_refuses_events_it_cannot_read_before_starting_anything(tmp_path, capsys):
    # a text file that is neither QuakeML, HYPO71 phase cards nor the CSV pair: no silent
    # "0 events", and no Redis or workers started for it
    readme = tmp_path / "README.txt"
    readme.write_text("# an archive\nsee the folder beside\n")
    out = tmp_path / "out"
    rc = cli.main(["reprocess", "--events", str(readme), "--waveforms", str(tmp_path),
                   "--output", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2
    assert "no HYPO71 phase card with a P reading" in err
    assert not out.exists()
    cards = tmp_path / "201101131959.dat"
    cards.write_text("CAMPIPD0 110113195941.50       43.93ISN1\n")
    rc = cli.main(["reprocess", "--events", str(cards), "--waveforms",
                   str(tmp_path / "nowhere" / "*.mseed"), "--output", str(out)])  # fmt: skip
    assert rc == 2
    assert "--waveforms: nothing matches" in capsys.readouterr().err
    assert not out.exists()


def test_polarity_show_says_what_is_wrong_with_its_inputs(tmp_path, capfd):
    import numpy as np
    import obspy

    mseed = tmp_path / "z.mseed"
    header = {"network": "XX", "station": "A", "channel": "HHZ", "sampling_rate": 100.0,
              "starttime": obspy.UTCDateTime("2024-01-01T00:00:00")}  # fmt: skip
    obspy.Trace(np.zeros(1000, dtype=np.int32), header=header).write(str(mseed), format="MSEED")
    text = tmp_path / "notes.txt"
    text.write_text("not a waveform\n")
    slow = tmp_path / "slow.mseed"
    obspy.Trace(np.zeros(200, dtype=np.int32), header={**header, "sampling_rate": 20.0}).write(
        str(slow), format="MSEED"
    )
    at = ["--pick", "2024-01-01T00:00:05"]
    cases = [
        (["--mseed", str(slow), *at], "sampled at 20 Hz: the reader reads records of 40 Hz"),
        (["--mseed", str(tmp_path / "nope.mseed"), *at], "no such file"),
        (["--mseed", str(mseed), "--pick", "five past"], "--pick 'five past'"),
        (["--mseed", str(mseed), *at, "--station", "XX.A"], "expected NET.STA.LOC.CHA"),
        (["--mseed", str(text), *at], "not seismic data obspy can read"),
    ]
    for argv, said in cases:
        assert cli.main(["polarity", "show", *argv, "--out", str(tmp_path / "w.png")]) == 1
        err = capfd.readouterr().err
        assert said in err and "Traceback" not in err


def test_polarity_eval_says_which_real_sets_it_could_not_find(tmp_path, capfd):
    assert cli.main(["polarity", "eval", "--real-only", "--data-dir", str(tmp_path / "x")]) == 2
    assert "--data-dir" in capfd.readouterr().err
    assert cli.main(["polarity", "eval", "--real-only", "--data-dir", str(tmp_path)]) == 0
    captured = capfd.readouterr()
    for name in ("texnet2017_manual_polarities", "pr2017_onsets_read_by_us",
                 "ingv_fmpc_analyst_polarities"):  # fmt: skip
        assert f"{name}: no waveforms under {tmp_path}, skipped" in captured.err
    assert "uh2010_onsets_read_by_us" in captured.out  # shipped with the package


def test_polarity_eval_reads_a_networks_own_labels(tmp_path, capfd):
    """`polarity eval --labels truth.xml --waveforms mseed/` on a scenario: its QuakeML P
    picks carry the true first motions, read from the records the replay would serve; the
    report has the right / wrong counts at the pick and shifted, beside the naive rule."""
    import json

    from obspy import read_events

    scen = tmp_path / "scen"
    assert cli.main(["scenario", "--out", str(scen), "--seed", "5", "--n-stations", "8",
                     "--n-events", "1", "--duration-s", "60"]) == 0  # fmt: skip
    truth = [p for p in read_events(str(scen / "truth.xml"))[0].picks
             if p.phase_hint == "P" and p.polarity in ("positive", "negative")]  # fmt: skip
    report = tmp_path / "eval.json"
    capfd.readouterr()
    rc = cli.main(["polarity", "eval", "--real-only", "--labels", str(scen / "truth.xml"),
                   "--waveforms", str(scen / "mseed"), "--json", str(report)])  # fmt: skip
    assert rc == 0
    got = json.loads(report.read_text())
    assert set(got) == {"labelled", "real_reliability"}  # the user's set replaces the shipped
    labelled = got["labelled"]
    assert labelled["n"] == len(truth) >= 6
    assert labelled["at_pick"]["right"] >= labelled["n"] - 1
    assert labelled["at_pick"]["wrong_sign"] == 0
    assert set(labelled["pick_shifted"]) == {"-0.05", "-0.02", "+0.02", "+0.05"}
    assert labelled["naive_rule"]["at_pick"]["n"] == labelled["n"]
    assert labelled["left_out"] == [] and {r["reason"] for r in labelled["picks"]} <= {
        "", "low_confidence", "pick_sensitive", "evidence_conflict"}  # fmt: skip
    # a station whose records are missing: its label is listed with why, not only logged
    gone = truth[0].waveform_id.station_code
    some = tmp_path / "some"
    some.mkdir()
    for f in (scen / "mseed").iterdir():
        if f".{gone}." not in f.name:
            (some / f.name).symlink_to(f)
    rc = cli.main(["polarity", "eval", "--real-only", "--labels", str(scen / "truth.xml"),
                   "--waveforms", str(some), "--json", str(report)])  # fmt: skip
    left = json.loads(report.read_text())["labelled"]["left_out"]
    assert rc == 0 and [(x["label"].split(".")[1], "no waveform" in x["why"]) for x in left] == [
        (gone, True)
    ]
    # the two go together, and an input without first motions says so
    assert cli.main(["polarity", "eval", "--real-only", "--labels", str(scen / "truth.xml")]) == 2
    assert "--labels and --waveforms go together" in capfd.readouterr().err
    bare = tmp_path / "bare.xml"
    cat = read_events(str(scen / "truth.xml"))
    for p in cat[0].picks:
        p.polarity = None
    cat.write(str(bare), format="QUAKEML")
    assert cli.main(["polarity", "eval", "--real-only", "--labels", str(bare),
                     "--waveforms", str(scen / "mseed")]) == 2  # fmt: skip
    assert "no P pick with a first motion" in capfd.readouterr().err


def test_picker_eval_scores_the_stream_pickers_on_a_networks_own_picks(tmp_path, capfd):
    """`picker eval --labels truth.xml --waveforms mseed/` on a scenario: each true P and S
    (the QuakeML's picks) scored by the nearest pick of the learned picker (and the STA/LTA
    detector for P) on the station's record, as the stream stage picks it."""
    import json

    from obspy import read_events

    scen = tmp_path / "scen"
    assert cli.main(["scenario", "--out", str(scen), "--seed", "5", "--n-stations", "8",
                     "--n-events", "1", "--duration-s", "120"]) == 0  # fmt: skip
    picks = read_events(str(scen / "truth.xml"))[0].picks
    report = tmp_path / "picks.json"
    capfd.readouterr()
    rc = cli.main(["picker", "eval", "--labels", str(scen / "truth.xml"), "--waveforms",
                   str(scen / "mseed"), "--json", str(report), "--plot",
                   str(tmp_path / "errors.png")])  # fmt: skip
    assert rc == 0
    assert (tmp_path / "errors.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = capfd.readouterr().out
    got = json.loads(report.read_text())
    n_p = sum(p.phase_hint == "P" for p in picks)
    assert got["P"]["learned"]["n"] == got["P"]["stalta"]["n"] == n_p == 8
    assert got["S"]["learned"]["n"] == sum(p.phase_hint == "S" for p in picks) == 8
    assert got["P"]["learned"]["within_0.1_s"] >= n_p - 1  # clear synthetic onsets
    assert got["P"]["learned"]["median_abs_error_s"] < 0.05
    assert len(got["labels"]) == 16 and got["left_out"] == []
    assert f"P ({n_p} labels), learned: " in out
    # the same records as an SDS archive give the same figures
    from obspy import read

    for tr in read(str(scen / "mseed" / "*")):
        s = tr.stats
        day = tmp_path / "sds" / str(s.starttime.year) / s.network / s.station / f"{s.channel}.D"
        day.mkdir(parents=True, exist_ok=True)
        tr.write(str(day / f"{tr.id}.D.{s.starttime.year}.{s.starttime.julday:03d}"), "MSEED")
    sds = tmp_path / "sds.json"
    assert cli.main(["picker", "eval", "--labels", str(scen / "truth.xml"), "--waveforms",
                     str(tmp_path / "sds"), "--json", str(sds)]) == 0  # fmt: skip
    assert {k: json.loads(sds.read_text())[k] for k in ("P", "S")} == {k: got[k] for k in "PS"}
    # a station the waveforms do not hold is named and left out
    st = tmp_path / "some"
    st.mkdir()
    for f in sorted((scen / "mseed").iterdir())[:-3]:  # the last station's three channels
        (st / f.name).write_bytes(f.read_bytes())
    assert cli.main(["picker", "eval", "--labels", str(scen / "truth.xml"), "--waveforms",
                     str(st), "--json", str(report)]) == 0  # fmt: skip
    assert "2 of 16 labels have no vertical in --waveforms" in capfd.readouterr().err
    assert len(json.loads(report.read_text())["left_out"]) == 2
    # a station whose record ends between its P and its S: the S is left out, not a miss
    s_first = min((p for p in picks if p.phase_hint == "S"), key=lambda p: p.time)
    sta = s_first.waveform_id.station_code
    p_time = next(p.time for p in picks if p.phase_hint == "P" and
                  p.waveform_id.station_code == sta)  # fmt: skip
    for f in st.iterdir():
        if f".{sta}." in f.name:
            tr = read(str(f))
            tr.trim(endtime=p_time + 0.5 * (s_first.time - p_time))
            tr.write(str(f), format="MSEED")
    assert cli.main(["picker", "eval", "--labels", str(scen / "truth.xml"), "--waveforms",
                     str(st), "--json", str(report)]) == 0  # fmt: skip
    left = json.loads(report.read_text())["left_out"]
    assert len(left) == 3 and any(f"{sta} S (outside the record)" in x for x in left)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["picker", "eval", "--labels", str(scen / "truth.xml"),
                     "--waveforms", str(empty)]) == 2  # fmt: skip
    assert "no file" in capfd.readouterr().err


def test_japanese_channel_codes_are_read_as_their_seed_equivalents(tmp_path):
    """Records with Japanese channel codes (Hi-net's U, N, E as SAC; K-NET's UD, NS, EW as
    miniSEED), labels without channel codes as JMA readings have none: `picker eval` and
    `polarity eval --labels` give what the same records under SEED codes give."""
    import json

    from obspy import Stream, read, read_events

    scen = tmp_path / "scen"
    assert cli.main(["scenario", "--out", str(scen), "--seed", "5", "--n-stations", "6",
                     "--n-events", "1", "--duration-s", "120"]) == 0  # fmt: skip
    cat = read_events(str(scen / "truth.xml"))
    for p in cat[0].picks:
        p.waveform_id.channel_code = None
    labels = tmp_path / "labels.xml"
    cat.write(str(labels), format="QUAKEML")
    japanese = tmp_path / "japanese"
    japanese.mkdir()
    hinet, knet = {"Z": "U", "N": "N", "E": "E"}, {"Z": "UD", "N": "NS", "E": "EW"}
    stations = sorted({tr.stats.station for tr in read(str(scen / "mseed" / "*"))})
    for k, tr in enumerate(read(str(scen / "mseed" / "*"))):
        hi = stations.index(tr.stats.station) % 2 == 0
        tr.stats.channel = (hinet if hi else knet)[tr.stats.channel[-1]]
        name = japanese / f"{tr.id}.{k}.{'sac' if hi else 'mseed'}"
        if hi:
            tr.data = tr.data.astype("float32")
        Stream([tr]).write(str(name), format="SAC" if hi else "MSEED")
    figures = {}
    for name, waveforms in (("seed", scen / "mseed"), ("japanese", japanese)):
        out = tmp_path / f"{name}.json"
        assert cli.main(["picker", "eval", "--labels", str(labels), "--waveforms",
                         str(waveforms), "--json", str(out)]) == 0  # fmt: skip
        got = json.loads(out.read_text())
        assert got["left_out"] == []
        pol = tmp_path / f"{name}_pol.json"
        assert cli.main(["polarity", "eval", "--real-only", "--labels", str(labels),
                         "--waveforms", str(waveforms), "--json", str(pol)]) == 0  # fmt: skip
        reads = json.loads(pol.read_text())["labelled"]
        signs = sorted((r["station_id"].split(".")[1], r["model"]) for r in reads["picks"])
        figures[name] = (got["P"], got["S"], reads["n"], reads["at_pick"], signs)
    assert figures["seed"][0]["learned"]["n"] == 6 and figures["seed"][2] >= 4
    assert figures["japanese"] == figures["seed"]


def test_stream_says_a_statefile_folder_that_is_not_there_before_it_starts(tmp_path, capfd):
    """A statefile in a folder that does not exist: one line at start (the stream connected,
    then died at its first save, and `run` restarted it again and again)."""
    state = tmp_path / "nodir" / "run.state"
    assert cli.main(["stream", "--seedlink", "127.0.0.1:1", "--statefile", str(state)]) == 2
    err = capfd.readouterr().err
    assert f"statefile {state}: its folder {state.parent} does not exist" in err


def test_associator_says_a_bad_velocity_model_before_anything_else(tmp_path, capfd, monkeypatch):
    """`worker associate --velocity-model model.txt` with km/s mistaken for m/s: one line
    naming the file, even before the Redis settings are looked at (it said redis.url)."""
    monkeypatch.delenv("FIRSTMOTION_REDIS__URL", raising=False)
    bad = tmp_path / "model.txt"
    bad.write_text("0 5500 3200\n2000 6300 3600\n")
    assert cli.main(["worker", "associate", "--velocity-model", str(bad)]) == 2
    err = capfd.readouterr().err
    assert f"{bad}: velocity model Vp up to 6300" in err and "redis.url" not in err
