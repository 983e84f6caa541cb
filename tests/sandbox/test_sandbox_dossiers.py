"""DongBoHoSoMC, CapNhatTienDoHoSoMC and TraCuuHoSo against the sandbox's state."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import orjson
import pytest

from tests.sandbox.sandbox_support import (
    ClientFactory,
    PortalClient,
    code,
    dossier,
    make_config,
    step,
)


@pytest.mark.parametrize("flag", [True, "true", "1", None])
async def test_is_updating_must_be_the_string_true_or_false(
    portal: PortalClient, flag: object
) -> None:
    """Anything but the strings "True"/"False" in isUpdating is refused with "400"."""
    reply = await portal.call("DongBoHoSoMC", isUpdating=flag, data=[dossier()])
    assert reply.json()["error_code"] == "400"
    assert "isUpdating" in reply.json()["message"]
    assert (await portal.stats())["dossiers"] == 0


async def test_create_twice_is_409_and_update_of_unknown_is_404(portal: PortalClient) -> None:
    """isUpdating "False" for a held dossier gets 409; "True" for an unknown one gets 404."""
    assert (await portal.push([dossier(1)]))["error_code"] == "0"
    again = await portal.push([dossier(1)])
    assert again["result"][0]["error_code"] == "409"
    unknown = await portal.push([dossier(2)], updating="True")
    assert unknown["result"][0]["error_code"] == "404"
    stats = await portal.stats()
    assert stats["dossiers"] == 1
    assert stats["rejections"] == {"409": 1, "404": 1}


async def test_an_update_replaces_the_whole_header(portal: PortalClient) -> None:
    """An update without a field the first version had leaves the portal without it."""
    await portal.push([dossier(1, GhiChu="ghi chú")])
    reply = await portal.push(
        [dossier(1, TrangThaiHoSo="9", NgayKetThucXuLy="20220719100000")], "True"
    )
    assert reply["result"][0] == {"MaHoSo": code(1), "error_code": "0", "message": "updated"}
    held = (await portal.http.get(f"/_sandbox/dossiers/{code(1)}")).json()
    assert "GhiChu" not in held["dossier"]
    assert held["dossier"]["TrangThaiHoSo"] == "9"
    assert held["versions"] == 2


async def test_an_identical_update_is_recorded_as_noop(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    """Resending the held version is accepted, flagged noop and does not add a version."""
    db = str(tmp_path / "s.db")
    portal = make_client(make_config(db_path=db))
    await portal.push([dossier(1)])
    reply = await portal.push([dossier(1)], updating="True")
    assert reply["result"][0]["message"] == "unchanged"
    stats = await portal.stats()
    assert (stats["header_updates"], stats["noop_updates"]) == (0, 1)
    portal.app.state.portal.store.commit()
    rows = (
        sqlite3.connect(db)
        .execute("SELECT is_updating, noop FROM applications ORDER BY rowid")
        .fetchall()
    )
    assert rows == [(0, 0), (1, 1)]


async def test_strict_validation_refuses_bad_items_per_item(portal: PortalClient) -> None:
    """With per-item replies, bad items are refused by name and the good ones still applied."""
    reply = await portal.push(
        [dossier(1), dossier(2, Extra="x"), dossier(3, ChuHoSo=""), dossier(4)]
    )
    assert reply["error_code"] == "1"
    codes = [item["error_code"] for item in reply["result"]]
    assert codes == ["0", "400", "400", "0"]
    assert reply["result"][1]["message"].startswith("Extra")
    assert reply["result"][2]["MaHoSo"] == code(3)
    assert (await portal.stats())["dossiers"] == 2


async def test_without_per_item_replies_a_batch_is_atomic(make_client: ClientFactory) -> None:
    """With per_item off, one bad item refuses the batch with its code and applies nothing."""
    portal = make_client(make_config(per_item=False))
    reply = await portal.push([dossier(1), dossier(2, NgayHenTra="20221332000000")])
    assert reply["error_code"] == "400"
    assert reply["message"].startswith("NgayHenTra")
    assert "result" not in reply
    assert (await portal.stats())["dossiers"] == 0
    assert await portal.push([dossier(1), dossier(2)]) == {"error_code": "0", "message": "ok"}
    assert (await portal.stats())["dossiers"] == 2


async def test_batch_envelope_limits(make_client: ClientFactory) -> None:
    """An empty or oversized data array, a bad madonvi and an unknown service are "400"."""
    portal = make_client(make_config(max_batch=2))
    assert (await portal.push([]))["error_code"] == "400"
    too_many = await portal.push([dossier(1), dossier(2), dossier(3)])
    assert (too_many["error_code"], "limit of 2" in too_many["message"]) == ("400", True)
    bad_unit = await portal.http.post(
        "/integration",
        json={"session": await portal.login(), "madonvi": "H26", "service": "TraCuuHoSo"},
        headers={"dstcode": "DEMO-DST"},
    )
    assert bad_unit.json()["error_code"] == "400"
    unknown = await portal.call("XoaHoSo")
    assert unknown.json()["error_code"] == "400"
    assert (await portal.stats())["rejections"]["400"] == 4


async def test_steps_are_deduplicated_and_counted(portal: PortalClient) -> None:
    """A resent step is accepted, stored once and counted as a duplicate."""
    await portal.push([dossier(1)])
    first = await portal.steps([step(1, "20220713090000", "4"), step(1, "20220714090000", "9")])
    assert first["error_code"] == "0"
    again = await portal.steps([step(1, "20220713090000", "4")])
    assert again["result"][0]["error_code"] == "0"
    stats = await portal.stats()
    assert (stats["steps"], stats["duplicate_steps"]) == (2, 1)
    held = (await portal.http.get(f"/_sandbox/dossiers/{code(1)}")).json()
    seqs = [s["seq"] for s in held["steps"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == 2
    assert [s["received"] for s in held["steps"]] == [2, 1]


async def test_a_step_for_a_dossier_not_held_is_404(portal: PortalClient) -> None:
    """Steps may only follow an acknowledged header."""
    reply = await portal.steps([step(7)])
    assert reply["result"][0]["error_code"] == "404"
    assert (await portal.stats())["steps"] == 0


async def test_lookup_reports_the_held_header_and_step_count(portal: PortalClient) -> None:
    """TraCuuHoSo returns [] for an unknown dossier, else its key fields and SoBuocXuLy."""
    assert (await portal.lookup(code(1)))["result"] == []
    await portal.push([dossier(1, NgayKetThucXuLy="20220719100000")])
    await portal.steps(
        [step(1, "20220713090000"), step(1, "20220713090000"), step(1, "20220714090000")]
    )
    (found,) = (await portal.lookup(code(1)))["result"]
    assert found == {
        "MaHoSo": code(1),
        "TrangThaiHoSo": "2",
        "NgayTiepNhan": "20220713080000",
        "NgayHenTra": "20220720170000",
        "NgayKetThucXuLy": "20220719100000",
        "SoBuocXuLy": 2,
    }


async def test_state_survives_a_restart(make_client: ClientFactory, tmp_path: Path) -> None:
    """A new sandbox on the same file still holds the dossiers, steps and counts."""
    config = make_config(db_path=str(tmp_path / "sandbox.db"))
    first = make_client(config)
    await first.push([dossier(1)])
    await first.steps([step(1)])
    first.app.state.portal.store.close()
    second = make_client(config)
    assert (await second.push([dossier(1)]))["result"][0]["error_code"] == "409"
    assert (await second.lookup(code(1)))["result"][0]["SoBuocXuLy"] == 1
    await second.steps([step(1, "20220715090000")])
    held = (await second.http.get(f"/_sandbox/dossiers/{code(1)}")).json()
    assert held["steps"][1]["seq"] > held["steps"][0]["seq"]


async def test_catalogues_come_from_the_csv_files(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    """The share path serves the catalogue files, and MaTTHC is checked against them."""
    procedures = tmp_path / "procedures.csv"
    procedures.write_text(
        "local_code,national_code,name,domain_code,domain_name\n"
        "XD01,1.000948,Cấp phép xây dựng,G03-XD,Xây dựng\n"
        "XD02,1.000948,Cấp phép xây dựng,G03-XD,Xây dựng\n",
        encoding="utf-8",
    )
    agencies = tmp_path / "agencies.csv"
    agencies.write_text("local_code,qcvn_code,name,level\nUB,000.00.01.H26,UBND,2\n", "utf-8")
    portal = make_client(make_config(procedures_csv=str(procedures), agencies_csv=str(agencies)))
    tthc = (await portal.call("LayDanhSachTTHC", path="/share")).json()["result"]
    assert tthc == [{"MATTHC": "1.000948", "TENTTHC": "Cấp phép xây dựng"}]
    units = (await portal.call("LayDanhMucCoQuan", path="/share")).json()["result"]
    assert units == [{"MADONVI": "000.00.01.H26", "TENDONVI": "UBND", "CAPDONVI": "2"}]
    domains = (await portal.call("LayDanhMucLinhVuc", path="/share")).json()["result"]
    assert domains == [{"MALINHVUC": "G03-XD", "TENLINHVUC": "Xây dựng"}]
    refused = await portal.push([dossier(1, MaTTHC="2.002492")])
    assert "catalogue" in refused["result"][0]["message"]


async def test_catalogues_are_empty_without_files(portal: PortalClient) -> None:
    """Without catalogue files the catalogue services answer empty lists."""
    reply = (await portal.call("LayDanhMucCoQuan", path="/share")).json()
    assert reply == {"error_code": "0", "message": "ok", "result": []}
    business = await portal.call("TraCuuHoSo", path="/share", mahoso=code(1))
    assert business.json()["error_code"] == "400"


async def test_payloads_are_held_as_canonical_json_text(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    """A header and a step are held as the text (not bytes) of their sorted-key JSON."""
    db = str(tmp_path / "s.db")
    portal = make_client(make_config(db_path=db))
    header, progress = dossier(1, ChuHoSo="Nguyễn Văn Ánh"), step(1)
    await portal.push([header])
    await portal.steps([progress])
    portal.app.state.portal.store.commit()
    with closing(sqlite3.connect(db)) as held:
        rows = [
            held.execute(f"SELECT typeof(payload), payload FROM {table}").fetchall()
            for table in ("dossiers", "steps")
        ]
    canonical = [orjson.dumps(x, option=orjson.OPT_SORT_KEYS).decode() for x in (header, progress)]
    assert rows == [[("text", canonical[0])], [("text", canonical[1])]]
