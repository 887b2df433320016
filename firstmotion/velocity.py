"""1-D layered velocity models: travel times, P takeoff angles, incidence angles, lookup tables.

Model file format (plain text, ``#`` starts a comment; ``# name: NAME`` names the model)::

    # columns: depth_km vp_km_s vs_km_s rho_g_cm3
    0.0   5.50  3.175  2.67
    5.5   6.30  3.637  2.77
    ...

Two columns (``depth_km vp_km_s``, the ``vz`` files of HASH and SKHASH) are read too
(:meth:`VelocityModel.from_depth_vp`), with Vs = Vp / 1.73, or Vp / R where the file carries a
``# vp_vs: R`` line (the S times the associator predicts and locates with); three columns are
``depth_km vp_km_s vs_km_s`` (density from Gardner's rule); five or six are TauP ``.nd`` rows
(``depth vp vs rho qp [qs]``, the Q columns ignored; a ``mantle`` line skipped, the core
from ``outer-core`` on not read); NonLinLoc ``LAYER depth vp_top vp_grad
vs_top vs_grad rho_top rho_grad`` lines are read, a layer with a gradient as constant
sublayers of at most 0.25 km (:func:`_constant_layers`). Each row is the
TOP of a constant-velocity layer (the first at depth 0); the last row is the half-space below.
A depth listed twice keeps its last row (a velocity step: the ``.nd`` form of an interface).
Commas and semicolons separate columns as spaces do; a first line of names (a spreadsheet's
header: ``depth_km,vp_km_s,vs_km_s``, in any order, units after ``_`` or ``(`` ignored) says
which column is which. A first line of other text is a HYPOINVERSE ``.crh`` title (it names the
model): the rows after it are ``vp_km_s depth_km`` (velocity first), read as the two-column
form. A SEISAN ``STATION0.HYP`` file (it has HYPO71 station lines) gives the model lines that
follow its stations (``vp depth [vs]``) and the Vp/Vs of its control line
(:func:`_seisan_hyp`); a VELEST ``.mod`` file (a title, then the P layers and the S layers,
each block its count and ``vel depth vdamp`` lines) its layers (:func:`_velest_mod`).
Velocities must be km/s: a Vp above 15 is refused as m/s.
The built-in default is ``firstmotion/data/socal_hk1977.txt`` (Hadley & Kanamori 1977,
southern California).

Ray theory in a flat stack of constant-velocity layers (Shearer 2009, ch. 4; the "layer-cake"
models of HYPOINVERSE and HASH's ``vmodel``): the first arrival at epicentral distance ``d``
from a source at depth ``h`` is the earliest of

* the direct ray, leaving the source upwards with ray parameter ``p`` solving
  ``d = sum_i z_i p v_i / sqrt(1 - p^2 v_i^2)`` over the layers between the source and the
  surface (found by a dense p-grid then Newton), ``t = sum_i z_i sqrt(1/v_i^2 - p^2) + p d``;
* a head wave along the top of each deeper layer k faster than everything above it
  (``p = 1 / v_k``; valid beyond its critical distance).

Angles: ``takeoff_deg`` from vertical-UP at the source (0 up, 90 horizontal, 180 down; the
SKHASH convention of :mod:`firstmotion.radiation`): ``asin(p v_src)`` for the direct ray and
``180 - asin(p v_src)`` for head waves (they leave downwards). ``incidence_deg`` is the angle of
the arriving ray from the vertical at the surface, ``asin(p v_surface)``. Travel times are those
of a flat Earth, which differs from obspy.taup's spherical one by < 0.1 s within 150 km.

:func:`taup_model` builds the same model for obspy.taup (the model above, iasp91 below
120 km) for cross-checks.

.. seealso:: Hadley, D. & Kanamori, H. (1977), GSA Bull. 88, 1469-1478; Shearer, P. M. (2009),
   Introduction to Seismology, 2nd ed., ch. 4; Crotwell, Owens & Ritsema (1999), The TauP
   Toolkit, SRL 70, 154-160.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from firstmotion.errors import InputError

DEFAULT_MODEL_FILE = Path(__file__).resolve().parent / "data" / "socal_hk1977.txt"
PHASES = ("P", "S")
VP_VS_DEFAULT = 1.73


ND_DISCONTINUITIES = ("mantle", "outer-core", "inner-core")  # named lines of TauP .nd files


def _last_of_each_depth(rows) -> list[list[float]]:
    """Rows (depth first) with a depth listed twice in a row kept once, its last row: a
    velocity step, the bottom of one layer and the top of the next at one depth."""
    out: list[list[float]] = []
    for row in rows:
        row = [float(v) for v in row]
        if out and row[0] == out[-1][0]:
            out[-1] = row
        else:
            out.append(row)
    return out


def _from_top(depth_km: np.ndarray) -> tuple[np.ndarray, float]:
    """Layer tops below sea level -> (tops below the model's top, the top below sea level): a
    first row above sea level is the model's top; one below it reaches up to sea level."""
    depth = np.asarray(depth_km, dtype=float).copy()
    top = min(float(depth[0]), 0.0)
    depth[0] = top
    return depth - top, top


# header names of a model's columns (lower case, units after "_" or "(" dropped)
HEADER_NAMES = {
    "depth": ("depth", "z", "top", "depth_top", "ztop"),
    "vp": ("vp", "p", "alpha", "pvel", "vpvel", "velocity", "vel", "v"),
    "vs": ("vs", "s", "beta", "svel", "vsvel"),
    "rho": ("rho", "density", "dens", "den"),
}
VP_MAX_KM_S = 15.0  # faster than any Earth layer a 1-D model here traces: m/s, not km/s


def _check_km_s(rows: list[list[float]]) -> None:
    """Refuse rows (``[depth, vp, ...]``) whose velocities are m/s, not km/s."""
    vp_max = max(r[1] for r in rows)
    if vp_max > VP_MAX_KM_S:
        raise ValueError(f"velocity model Vp up to {vp_max:g}: velocities must be km/s "
                         f"(no Earth layer is faster than {VP_MAX_KM_S:g} km/s)")  # fmt: skip


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _header_columns(names: list[str], line: str) -> list[int]:
    """Column indices of depth, vp[, vs[, rho]] from a header line (``depth_km,vp_km_s,vs``)."""
    keys = [re.split(r"[_(\[]", n.strip().lower(), maxsplit=1)[0] for n in names]
    found = {}
    for column, aliases in HEADER_NAMES.items():
        hits = [i for i, k in enumerate(keys) if k in aliases]
        if hits:
            found[column] = hits[0]
    if "depth" not in found or "vp" not in found or ("rho" in found and "vs" not in found):
        raise ValueError(
            f"velocity model header {line.strip()!r}: name the columns depth, vp[, vs[, rho]] "
            "(units km and km/s), or give rows of numbers only"
        )
    return [found[c] for c in ("depth", "vp", "vs", "rho") if c in found]


def _crh_row(parts: list[str], line: str, title: str, header_error: str) -> list[float]:
    """``[depth, vp]`` of a row of a HYPOINVERSE ``.crh`` file (after its title line: the P
    velocity, then the depth of the layer's top); a row of another form means the first line
    was a header naming no known column (``header_error``)."""
    try:
        if len(parts) != 2:
            raise ValueError
        vp, depth = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(
            f"{header_error}; read as a HYPOINVERSE .crh model (a title line, then "
            f"`vp_km_s depth_km` rows), {line.strip()!r} is not such a row"
        ) from None
    return [depth, vp]


# a station line of a SEISAN STATION0.HYP file (HYPO71's): a 4-5 letter code, latitude
# degrees and minutes with N or S, longitude with E or W (minutes with or without the point)
HYP_STATION_LINE = re.compile(r"^.[ \w]{5}[\d ]{2}[\d .]{5}[NSns][\d ]{3}[\d .]{5}[EWew]")


def _seisan_hyp(text: str) -> tuple[list[list[float]], float] | None:
    """The layers (``[depth, vp]`` rows, or ``[depth, vp, vs]`` where every row gives a Vs)
    and Vp/Vs of a SEISAN ``STATION0.HYP`` file, or None for text of another form.

    The file is blocks of lines separated by blank lines: ``RESET TEST`` lines, the station
    lines, the model (one line per layer: Vp, the depth of its top, an optional Vs, an ``N``
    or ``B`` marking the Moho or Conrad, ``!`` comments), then the control line whose
    columns 16-20 hold Vp/Vs (SEISAN's HYPOCENTER program; HYPO71's layout)."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith(("!", "#"))]
    if not any(HYP_STATION_LINE.match(line) for line in lines):
        return None
    blocks: list[list[str]] = [[]]
    for line in lines:  # (a line holding only a comment was dropped: it separates nothing)
        if line.strip():
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    first = next(i for i, b in enumerate(blocks) if any(HYP_STATION_LINE.match(x) for x in b))
    if first + 1 >= len(blocks) or not blocks[first + 1]:
        raise ValueError("a STATION0.HYP file whose station lines no model follows")
    rows = []
    for line in blocks[first + 1]:
        parts = line.split("!", 1)[0].split()
        values = [p for p in parts if p.upper() not in ("N", "B")]
        if not 2 <= len(values) <= 3 or not all(map(_is_number, values)):
            raise ValueError(f"STATION0.HYP model line needs `vp depth [vs] [N|B]`, got {line!r}")
        vp, depth, *vs = (float(v) for v in values)
        rows.append([depth, vp, *vs])
    if len({len(r) for r in rows}) != 1:
        rows = [r[:2] for r in rows]  # a Vs on some layers only: Vp/Vs for all
    vp_vs = VP_VS_DEFAULT
    control = blocks[first + 2][0] if first + 2 < len(blocks) and blocks[first + 2] else ""
    if _is_number(control[15:20]) and float(control[15:20]) > 1.0:
        vp_vs = float(control[15:20])
    return rows, vp_vs


def _velest_block(lines: list[str], at: int) -> tuple[list[tuple[float, float]], int] | None:
    """The ``(depth, velocity)`` layers of the VELEST block whose count line is ``lines[at]``
    (``N`` then anything, then N lines ``vel depth vdamp ...``) and the index after it; None
    where ``lines[at]`` is no such block."""
    parts = lines[at].split() if at < len(lines) else []
    if not parts or not parts[0].isdigit() or int(parts[0]) < 1:
        return None
    n = int(parts[0])
    rows = []
    for line in lines[at + 1 : at + 1 + n]:
        values = line.split()
        if len(values) < 3 or not all(map(_is_number, values[:3])):
            return None
        rows.append((float(values[1]), float(values[0])))
    return (rows, at + 1 + n) if len(rows) == n else None


def _velest_mod(text: str) -> list[list[float]] | None:
    """``[depth, vp]`` rows, or ``[depth, vp, vs]`` with the S block, of a VELEST model file
    (``.mod``: a title line; the number of P layers, then one line each, ``vel depth vdamp``,
    the first often labelled ``P-VELOCITY MODEL``; the same for S), or None for text of another
    form. Where the S layers' tops differ from P's, each top of either is a layer with the P
    and S velocities of the layers it lies in."""
    lines = [line for line in text.splitlines() if line.strip()]
    block = _velest_block(lines, 1)
    if block is None or ("vel" not in lines[1].lower() and not _is_number(lines[1].strip())):
        return None  # the count line says `vel,depth,vdamp,phase` (or is the count alone)
    p_rows, after = block
    s_block = _velest_block(lines, after)
    if s_block is None:
        if after < len(lines):
            raise ValueError(f"VELEST model: after the P layers, {lines[after]!r} is not the S "
                             "layer count")  # fmt: skip
        return [[d, v] for d, v in p_rows]
    s_rows, after = s_block
    if after < len(lines):
        raise ValueError(f"VELEST model: {lines[after]!r} after the S layers")

    def at(rows: list[tuple[float, float]], depth: float) -> float:
        above = [v for d, v in rows if d <= depth + 1e-9]
        return above[-1] if above else rows[0][1]

    tops = sorted({d for d, _ in p_rows} | {d for d, _ in s_rows})
    return [[d, at(p_rows, d), at(s_rows, d)] for d in tops]


GRADIENT_STEP_KM = 0.25  # a gradient layer's constant sublayers are at most this thick
GRADIENT_HALF_SPACE_KM = 30.0  # a last layer with a gradient is followed this far down


def _nonlinloc_layer(values: list[str], line: str) -> list[float]:
    """``[depth, vp, vs, rho, vp_grad, vs_grad, rho_grad]`` of a NonLinLoc ``LAYER`` line
    (gradients per km, increasing downwards)."""
    try:
        depth, vp, vp_grad, vs, vs_grad, rho, rho_grad = (float(v) for v in values[:7])
    except ValueError:
        raise ValueError(
            f"NonLinLoc LAYER line needs depth vp_top vp_grad vs_top vs_grad rho_top rho_grad, "
            f"got {line!r}"
        ) from None
    return [depth, vp, vs, rho, vp_grad, vs_grad, rho_grad]


def _constant_layers(layers: list[list[float]]) -> list[list[float]]:
    """NonLinLoc layers as constant ``[depth, vp, vs, rho]`` rows: a layer with a gradient
    becomes sublayers of at most ``GRADIENT_STEP_KM``, each at the velocities of its middle
    (the travel time of a vertical ray through them is that of the gradient to 1e-4); a last
    layer with a gradient is followed ``GRADIENT_HALF_SPACE_KM`` down, then a half-space at
    the velocities reached there."""
    out: list[list[float]] = []
    for i, (top, vp, vs, rho, g_vp, g_vs, g_rho) in enumerate(layers):
        if not (g_vp or g_vs or g_rho):
            out.append([top, vp, vs, rho])
            continue
        last = i + 1 == len(layers)
        bottom = top + GRADIENT_HALF_SPACE_KM if last else layers[i + 1][0]
        n = max(1, int(np.ceil((bottom - top) / GRADIENT_STEP_KM - 1e-9)))
        edges = np.linspace(top, bottom, n + 1)
        for a, b in zip(edges[:-1], edges[1:], strict=True):
            mid = (a + b) / 2 - top
            out.append([float(a), vp + g_vp * mid, vs + g_vs * mid, rho + g_rho * mid])
        if last:
            h = bottom - top
            out.append([float(bottom), vp + g_vp * h, vs + g_vs * h, rho + g_rho * h])
    return out


@dataclass(frozen=True, eq=False)
class VelocityModel:
    """A stack of constant-velocity layers; ``depth_km[i]`` is the top of layer ``i``, counted
    from the model's top, which is ``top_km`` below sea level (0, or < 0 for a model that
    starts above sea level)."""

    depth_km: np.ndarray
    vp_km_s: np.ndarray
    vs_km_s: np.ndarray
    rho_g_cm3: np.ndarray
    name: str = "model"
    top_km: float = 0.0

    def __post_init__(self) -> None:
        arrays = [np.asarray(a, dtype=float).copy() for a in self._columns()]
        if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1 or arrays[0].size < 1:
            raise ValueError("depth_km, vp_km_s, vs_km_s, rho_g_cm3 must be 1-D, same length >= 1")
        depth, vp, vs, rho = arrays
        if depth[0] != 0.0 or np.any(np.diff(depth) <= 0):
            raise ValueError(f"layer tops must start at 0 and increase strictly, got {depth}")
        top = float(self.top_km)
        if not (np.isfinite(top) and top <= 0.0):
            raise ValueError(f"top_km (the model's top below sea level) must be <= 0, got {top}")
        object.__setattr__(self, "top_km", top)
        if np.any(vp <= 0) or np.any(vs <= 0) or np.any(rho <= 0) or np.any(vs >= vp):
            raise ValueError("need vp > vs > 0 and rho > 0 in every layer")
        for name, a in zip(("depth_km", "vp_km_s", "vs_km_s", "rho_g_cm3"), arrays, strict=True):
            a.flags.writeable = False
            object.__setattr__(self, name, a)

    def _columns(self) -> tuple[np.ndarray, ...]:
        return (self.depth_km, self.vp_km_s, self.vs_km_s, self.rho_g_cm3)

    def model_depth_km(self, depth_km: ArrayLike) -> np.ndarray:
        """Depth below the model's top of a depth below sea level (what rays are traced from)."""
        return np.asarray(depth_km, dtype=float) - self.top_km

    def sea_level_depth_km(self, model_depth_km: ArrayLike) -> np.ndarray:
        """Depth below sea level of a depth below the model's top (what catalogs report)."""
        return np.asarray(model_depth_km, dtype=float) + self.top_km

    def height_above_top_km(self, elevation_m: ArrayLike) -> np.ndarray:
        """A station's height (km) above the model's top, the station taken at sea level when
        it is below it (as with a model whose top is sea level): negative for a station
        below a top above sea level. Rays are traced to the top; this height makes the
        vertical static (``height / v_top``)."""
        return np.maximum(np.asarray(elevation_m, dtype=float), 0.0) / 1000.0 + self.top_km

    @classmethod
    def from_text(cls, text: str, name: str = "model") -> VelocityModel:
        """Parse the plain-text format of the module docstring."""
        velest = _velest_mod(text)
        if velest is not None:
            return cls._from_rows(velest, VP_VS_DEFAULT, name=name)
        seisan = _seisan_hyp(text)
        if seisan is not None:
            return cls._from_rows(*seisan, name=name)
        rows = []
        nonlinloc: list[list[float]] = []  # LAYER lines, gradients and all
        order: list[int] | None = None  # columns named by a header line
        title: tuple[str, str] | None = None  # a first line of text that names no column
        named = False
        vp_vs = VP_VS_DEFAULT
        for line in text.splitlines():
            stripped = line.strip()
            if stripped.startswith("#"):
                key, _, value = stripped.lstrip("#").partition(":")
                key = key.strip().lower()
                if key == "name" and value.strip():
                    name, named = value.strip(), True
                elif key in ("vp_vs", "vp/vs") and value.strip():
                    vp_vs = float(value)
                    if not vp_vs > 1.0:
                        raise ValueError(f"velocity model vp_vs must be > 1, got {vp_vs}")
                continue
            if stripped.lower() in ("outer-core", "inner-core"):
                break  # a whole-Earth .nd file: the core (Vs 0) is not for these rays
            if not stripped or stripped.lower() in ND_DISCONTINUITIES:
                continue
            parts = stripped.replace(",", " ").replace(";", " ").split()
            if parts[0].upper() == "LAYER":  # NonLinLoc
                nonlinloc.append(_nonlinloc_layer(parts[1:], line))
                continue
            if not rows and order is None and title is None and not all(map(_is_number, parts)):
                # a CSV's column names, or else a HYPOINVERSE .crh title (if `vp depth` rows
                # follow; the reason it is no header is kept for a file that is neither)
                if any(map(_is_number, parts)):
                    title = (stripped, f"velocity model row is not numbers: {line!r}")
                else:
                    try:
                        order = _header_columns(parts, line)
                    except ValueError as exc:
                        title = (stripped, str(exc))
                continue
            if title is not None:
                rows.append(_crh_row(parts, line, *title))
                continue
            if order is not None:
                if len(parts) < max(order) + 1:
                    raise ValueError(f"velocity model row has fewer columns than its header: "
                                     f"{line!r}")  # fmt: skip
                parts = [parts[i] for i in order]
            if len(parts) not in (2, 3, 4, 5, 6):
                raise ValueError(
                    "velocity model row needs depth_km vp_km_s [vs_km_s [rho_g_cm3 [qp [qs]]]] "
                    f"(2 to 6 columns) or a NonLinLoc LAYER line, got {line!r}"
                )
            try:
                rows.append([float(p) for p in parts[: min(len(parts), 4)]])
            except ValueError:
                raise ValueError(f"velocity model row is not numbers: {line!r}") from None
        if nonlinloc:
            if rows:
                raise ValueError("velocity model mixes NonLinLoc LAYER lines and other rows")
            rows = _constant_layers(nonlinloc)
        if not rows:
            raise ValueError(title[1] if title else "velocity model has no layers")
        if len({len(r) for r in rows}) != 1:
            raise ValueError("velocity model rows mix different numbers of columns")
        if title is not None:  # a .crh title names the model
            _check_km_s(rows)
            if min(r[1] for r in rows) <= 0:
                raise ValueError(
                    f"{title[1]}; read as a HYPOINVERSE .crh model (a title line, then `vp_km_s "
                    "depth_km` rows) it has a velocity <= 0: for `depth vp` rows name the "
                    "columns (depth vp) or drop the first line"
                )
            return cls.from_depth_vp(np.array(rows), name=name if named else title[0], vp_vs=vp_vs)
        return cls._from_rows(rows, vp_vs, name=name)

    @classmethod
    def _from_rows(cls, rows: list[list[float]], vp_vs: float, name: str) -> VelocityModel:
        """A model from ``[depth, vp]`` rows (Vs = Vp / ``vp_vs``), ``[depth, vp, vs]`` or
        ``[depth, vp, vs, rho]`` (density from Gardner's rule without one), depths below sea
        level (:func:`_from_top`), a repeated depth a velocity step."""
        _check_km_s(rows)
        if len(rows[0]) == 2:
            return cls.from_depth_vp(np.array(rows), name=name, vp_vs=vp_vs)
        a = np.array(_last_of_each_depth(rows))
        rho = a[:, 3] if a.shape[1] == 4 else 1.74 * a[:, 1] ** 0.25
        depth, top = _from_top(a[:, 0])
        return cls(depth, a[:, 1], a[:, 2], rho, name=name, top_km=top)

    @classmethod
    def from_depth_vp(
        cls, rows: ArrayLike, name: str = "model", vp_vs: float = VP_VS_DEFAULT
    ) -> VelocityModel:
        """A model from (depth_km, vp_km_s) rows, as SKHASH and HASH read them (``vz`` files).

        Each row is taken as the top of a layer with that P velocity (HASH interpolates
        linearly between rows; as layer tops the rows give the same velocity at each listed
        depth). A depth listed twice (a velocity step) keeps its last row. Vs is
        ``vp / vp_vs`` and density Gardner's ``1.74 * vp**0.25`` g/cm3: only P rays matter for
        first motions.
        """
        a = np.array(_last_of_each_depth(np.asarray(rows, dtype=float).reshape(-1, 2)))
        (d_arr, top), vp_arr = _from_top(a[:, 0]), a[:, 1]
        return cls(d_arr, vp_arr, vp_arr / vp_vs, 1.74 * vp_arr**0.25, name=name, top_km=top)

    @classmethod
    def from_file(cls, path: str | Path) -> VelocityModel:
        """A model file (:meth:`from_text`); an :class:`~firstmotion.errors.InputError` naming
        the file when it is not one."""
        path = Path(path)
        text = path.read_text(errors="replace")
        try:
            return cls.from_text(text, name=path.stem)
        except ValueError as exc:
            raise InputError(f"{path}: {exc}") from None

    @classmethod
    def default(cls) -> VelocityModel:
        """The built-in southern-California model (Hadley & Kanamori 1977)."""
        return cls.from_file(DEFAULT_MODEL_FILE)

    @classmethod
    def homogeneous(cls, vp_km_s: float, vs_km_s: float, rho_g_cm3: float = 2.7) -> VelocityModel:
        return cls(np.array([0.0]), np.array([vp_km_s]), np.array([vs_km_s]), np.array([rho_g_cm3]),
                   name="homogeneous")  # fmt: skip

    def to_text(self) -> str:
        lines = [
            "# firstmotion 1-D velocity model",
            f"# name: {self.name}",
            "# columns: depth_km vp_km_s vs_km_s rho_g_cm3",
            "# each row is the TOP of a constant-velocity layer; the last row is the half-space.",
        ]
        for depth, *rest in zip(*self._columns(), strict=True):
            lines.append(" ".join(f"{v:.4f}" for v in (depth + self.top_km, *rest)))
        return "\n".join(lines) + "\n"

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_text())
        return path

    def interface_rows(self, max_depth_km: float) -> dict[str, np.ndarray]:
        """The model as piecewise-linear rows (each interface twice, top and bottom values) down
        to ``max_depth_km``: the form of TauP ``.nd`` files and of PyOcto's
        ``VelocityModel1D.create_model`` data frame (columns depth, vp, vs)."""
        if max_depth_km <= self.depth_km[-1]:
            raise ValueError(f"max_depth_km must exceed the last interface {self.depth_km[-1]}")
        bottoms = np.append(self.depth_km[1:], max_depth_km)
        depth = np.column_stack([self.depth_km, bottoms]).ravel()
        rep = {k: np.repeat(v, 2) for k, v in (("vp", self.vp_km_s), ("vs", self.vs_km_s),
                                               ("rho", self.rho_g_cm3))}  # fmt: skip
        return {"depth": depth, **rep}

    def velocity_km_s(self, phase: str) -> np.ndarray:
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
        return self.vp_km_s if phase == "P" else self.vs_km_s

    def layer_index(self, depth_km: ArrayLike) -> np.ndarray:
        """Index of the layer containing each depth (a depth on an interface is in the layer
        below it)."""
        return np.searchsorted(self.depth_km, np.asarray(depth_km, dtype=float), side="right") - 1

    def source_layer_index(self, depth_km: ArrayLike) -> np.ndarray:
        """Layer a source radiates in: a source exactly on an interface is in the layer ABOVE
        it (its rays leave through that layer, and it excites the interface's head wave), which
        keeps travel times continuous in source depth."""
        i = np.searchsorted(self.depth_km, np.asarray(depth_km, dtype=float), side="left") - 1
        return np.maximum(i, 0)


@dataclass(frozen=True)
class Rays:
    """First arrivals: arrays broadcast from (distance_km, depth_km)."""

    time_s: np.ndarray
    takeoff_deg: np.ndarray
    incidence_deg: np.ndarray
    ray_parameter_s_km: np.ndarray
    branch: np.ndarray = field(repr=False)  # 0 direct ray, k > 0 head wave atop layer k

    @property
    def head_wave(self) -> np.ndarray:
        return self.branch > 0


def _column_above(model: VelocityModel, v: np.ndarray, depth_km: float):
    """Thicknesses and velocities of the layer pieces between the surface and ``depth_km``."""
    tops = model.depth_km
    bottoms = np.append(tops[1:], np.inf)
    thick = np.clip(np.minimum(bottoms, depth_km) - tops, 0.0, None)
    keep = thick > 0
    return thick[keep], v[keep]


def _direct(
    z: np.ndarray, v: np.ndarray, v_src: float, distance_km: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Upgoing direct ray through layer pieces (z, v) to distances: (time_s, p_s_km)."""
    d = np.asarray(distance_km, dtype=float)
    if z.size == 0:  # source at the surface: along the surface
        return d / v_src, np.full_like(d, 1.0 / v_src)
    v_max = float(v.max())
    # dense grid in the angle of the ray in the fastest layer; x(p) is monotonic
    theta = np.linspace(0.0, 0.5 * np.pi, 4097)[:-1]
    theta = np.concatenate([theta, 0.5 * np.pi - np.geomspace(1e-3, 1e-7, 48)])
    p_grid = np.sin(theta) / v_max
    pv = p_grid[:, None] * v[None, :]
    x_grid = np.sum(z[None, :] * pv / np.sqrt(1.0 - pv**2), axis=1)
    p = np.interp(d, x_grid, p_grid)
    p_cap = np.nextafter(1.0 / v_max, 0.0)
    for _ in range(4):  # Newton on x(p) = d
        pv = np.minimum(p[:, None] * v[None, :], np.nextafter(1.0, 0.0))
        root = np.sqrt(1.0 - pv**2)
        x = np.sum(z * pv / root, axis=1)
        dxdp = np.sum(z * v / root**3, axis=1)
        p = np.clip(p - (x - d) / dxdp, 0.0, p_cap)
    eta = np.sqrt(np.clip(1.0 / v[None, :] ** 2 - p[:, None] ** 2, 0.0, None))
    return np.sum(z * eta, axis=1) + p * d, p


def trace_rays(
    model: VelocityModel, distance_km: ArrayLike, depth_km: ArrayLike, phase: str = "P"
) -> Rays:
    """Exact first arrivals (direct or head wave) of ``phase`` in the layered model.

    ``distance_km`` (epicentral) and ``depth_km`` (source, >= 0) broadcast together; stations at
    depth 0. See the module docstring for the method and the angle conventions.
    """
    v_all = model.velocity_km_s(phase)
    d_b, h_b = np.broadcast_arrays(
        np.asarray(distance_km, dtype=float), np.asarray(depth_km, dtype=float)
    )
    if np.any(d_b < 0) or np.any(h_b < 0) or not np.all(np.isfinite(d_b + h_b)):
        raise ValueError("distance_km and depth_km must be finite and >= 0")
    shape = d_b.shape
    d_flat, h_flat = d_b.ravel(), h_b.ravel()
    t = np.empty(d_flat.size)
    p = np.empty(d_flat.size)
    branch = np.zeros(d_flat.size, dtype=np.int64)
    src_layer = model.source_layer_index(h_flat)
    v_src_all = v_all[src_layer]
    for h in np.unique(h_flat):
        sel = h_flat == h
        d = d_flat[sel]
        z_up, v_up = _column_above(model, v_all, h)
        v_src = float(v_all[model.source_layer_index(h)])
        tt, pp = _direct(z_up, v_up, v_src, d)
        hh = np.zeros(d.size, dtype=np.int64)
        v_fast = 0.0
        for k in range(int(model.source_layer_index(h)) + 1, model.depth_km.size):
            z_int = model.depth_km[k]
            z_above, v_above = _column_above(model, v_all, z_int)
            v_fast = max(v_fast, float(v_above.max()))
            if v_all[k] <= v_fast:
                continue
            pk = 1.0 / v_all[k]
            eta_up = np.sqrt(1.0 / v_above**2 - pk**2)
            tan_up = pk * v_above / np.sqrt(1.0 - (pk * v_above) ** 2)
            z_dn = _between(model, h, z_int)  # pieces between the source and the interface
            v_dn = v_all[: z_dn.size]
            eta_dn = np.sqrt(1.0 / v_dn**2 - pk**2)
            tan_dn = pk * v_dn / np.sqrt(1.0 - (pk * v_dn) ** 2)
            x_crit = np.sum(z_above * tan_up) + np.sum(z_dn * tan_dn)
            t_head = d * pk + np.sum(z_above * eta_up) + np.sum(z_dn * eta_dn)
            better = (d >= x_crit) & (t_head < tt)
            tt = np.where(better, t_head, tt)
            pp = np.where(better, pk, pp)
            hh = np.where(better, k, hh)
        t[sel], p[sel], branch[sel] = tt, pp, hh
    sin_src = np.clip(p * v_src_all, 0.0, 1.0)
    takeoff = np.degrees(np.arcsin(sin_src))
    takeoff = np.where(branch > 0, 180.0 - takeoff, takeoff)
    incidence = np.degrees(np.arcsin(np.clip(p * v_all[0], 0.0, 1.0)))
    return Rays(
        t.reshape(shape), takeoff.reshape(shape), incidence.reshape(shape), p.reshape(shape),
        branch.reshape(shape),
    )  # fmt: skip


def _between(model: VelocityModel, top_km: float, bottom_km: float) -> np.ndarray:
    """Thickness of each layer (indexed from 0) lying between depths top_km and bottom_km."""
    tops = model.depth_km
    bottoms = np.append(tops[1:], np.inf)
    thick = np.clip(np.minimum(bottoms, bottom_km) - np.maximum(tops, top_km), 0.0, None)
    n = int(np.searchsorted(tops, bottom_km, side="left"))
    return thick[:n]


@dataclass(frozen=True, eq=False)
class TravelTimeTable:
    """First-arrival P and S times and angles on a regular (distance_km, depth_km) grid.

    Built by :func:`trace_rays` at every node; :meth:`lookup` interpolates bilinearly. Times are
    continuous, so interpolating them is accurate everywhere (< 0.02 s with the default steps).
    Angles jump where the first arrival changes branch (direct ray -> head wave) or the source
    crosses an interface, and bend fast near the epicentre, so where the four surrounding nodes
    disagree on the branch or the source layer, or within ``exact_within_km`` of the epicentre,
    :meth:`lookup` traces those few rays exactly.
    """

    model: VelocityModel
    distance_km: np.ndarray
    depth_km: np.ndarray
    grids: dict[str, np.ndarray] = field(repr=False)  # e.g. "P_time_s": (n_distance, n_depth)
    exact_within_km: float = 5.0

    @classmethod
    def build(
        cls,
        model: VelocityModel,
        max_distance_km: float = 300.0,
        max_depth_km: float = 40.0,
        distance_step_km: float = 1.0,
        depth_step_km: float = 0.5,
    ) -> TravelTimeTable:
        if min(max_distance_km, max_depth_km, distance_step_km, depth_step_km) <= 0:
            raise ValueError("table extents and steps must be > 0")
        dist = np.arange(0.0, max_distance_km + 0.5 * distance_step_km, distance_step_km)
        depth = np.arange(0.0, max_depth_km + 0.5 * depth_step_km, depth_step_km)
        if dist.size < 2 or depth.size < 2:
            raise ValueError("the table needs at least two nodes in distance and in depth")
        dd, hh = np.meshgrid(dist, depth, indexing="ij")
        grids = {}
        for phase in PHASES:
            r = trace_rays(model, dd, hh, phase)
            grids[f"{phase}_time_s"] = r.time_s
            grids[f"{phase}_takeoff_deg"] = r.takeoff_deg
            grids[f"{phase}_incidence_deg"] = r.incidence_deg
            grids[f"{phase}_branch"] = r.branch
        return cls(model, dist, depth, grids)

    def travel_time(
        self, distance_km: ArrayLike, depth_km: ArrayLike, phase: str = "P"
    ) -> np.ndarray:
        """First-arrival time of ``phase`` (s) by bilinear interpolation only (the fast path)."""
        return self._lookup(distance_km, depth_km, phase, angles=False)[0]

    def lookup(
        self, distance_km: ArrayLike, depth_km: ArrayLike, phase: str = "P"
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(time_s, takeoff_deg, incidence_deg) of ``phase``'s first arrival (see class doc)."""
        return self._lookup(distance_km, depth_km, phase, angles=True)

    def _lookup(
        self, distance_km: ArrayLike, depth_km: ArrayLike, phase: str, angles: bool
    ) -> tuple[np.ndarray, ...]:
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
        d, h = np.broadcast_arrays(
            np.asarray(distance_km, dtype=float), np.asarray(depth_km, dtype=float)
        )
        if (
            np.any(~np.isfinite(d + h)) or np.any(d < 0) or np.any(h < 0)
            or np.any(d > self.distance_km[-1]) or np.any(h > self.depth_km[-1])
        ):  # fmt: skip
            raise ValueError(
                f"lookup outside the table: distance 0-{self.distance_km[-1]} km, "
                f"depth 0-{self.depth_km[-1]} km"
            )
        fd = d / (self.distance_km[1] - self.distance_km[0])
        fh = h / (self.depth_km[1] - self.depth_km[0])
        i = np.clip(np.floor(fd).astype(np.int64), 0, self.distance_km.size - 2)
        j = np.clip(np.floor(fh).astype(np.int64), 0, self.depth_km.size - 2)
        wd, wh = fd - i, fh - j

        def interp(g: np.ndarray) -> np.ndarray:
            return (
                g[i, j] * (1 - wd) * (1 - wh) + g[i + 1, j] * wd * (1 - wh)
                + g[i, j + 1] * (1 - wd) * wh + g[i + 1, j + 1] * wd * wh
            )  # fmt: skip

        if not angles:
            return (interp(self.grids[f"{phase}_time_s"]),)
        out = [
            interp(self.grids[f"{phase}_{k}"]) for k in ("time_s", "takeoff_deg", "incidence_deg")
        ]
        b = self.grids[f"{phase}_branch"]
        mixed = (b[i, j] != b[i + 1, j]) | (b[i, j] != b[i, j + 1]) | (b[i, j] != b[i + 1, j + 1])
        layer = self.model.source_layer_index(self.depth_km)
        mixed |= layer[j] != layer[j + 1]  # the source's own velocity changes inside the cell
        exact = mixed | (d < self.exact_within_km)
        if np.any(exact):
            r = trace_rays(self.model, d[exact], h[exact], phase)
            out[1][exact] = r.takeoff_deg
            out[2][exact] = r.incidence_deg
        return out[0], out[1], out[2]


_TAUP_LOWER_FROM_KM = 120.0


def taup_nd_text(model: VelocityModel) -> str:
    """The model as a TauP ``.nd`` file: the layers (``mantle`` at the deepest interface) down to
    120 km, iasp91 (from obspy's ``iasp91.tvel``) below, so TauP has a whole Earth."""
    import obspy.taup

    tvel = Path(obspy.taup.__file__).resolve().parent / "data" / "iasp91.tvel"
    lower = np.loadtxt(tvel, skiprows=2)
    lower = lower[lower[:, 0] >= _TAUP_LOWER_FROM_KM]
    tops = list(model.depth_km) + [_TAUP_LOWER_FROM_KM]
    lines = []
    n = model.depth_km.size
    for k in range(n):
        if k == n - 1 and n > 1:
            lines.append("mantle")
        row = (model.vp_km_s[k], model.vs_km_s[k], model.rho_g_cm3[k])
        for z in (tops[k], tops[k + 1]):
            lines.append(f"{z:.4f} {row[0]:.4f} {row[1]:.4f} {row[2]:.4f}")
    if n == 1:
        lines.append("mantle")
        lines.append(f"{_TAUP_LOWER_FROM_KM:.4f} {model.vp_km_s[0]:.4f} "
                     f"{model.vs_km_s[0]:.4f} {model.rho_g_cm3[0]:.4f}")  # fmt: skip
    prev_z = None
    for z, vp, vs, rho in lower:
        if prev_z is not None and z == prev_z and vs == 0.0 and "outer-core" not in lines:
            lines.append("outer-core")
        elif prev_z is not None and z == prev_z and vs > 0.0 and "outer-core" in lines:
            lines.append("inner-core")
        lines.append(f"{z:.4f} {vp:.4f} {vs:.4f} {rho:.4f}")
        prev_z = z
    return "\n".join(lines) + "\n"


def taup_model(model: VelocityModel, cache_dir: str | Path | None = None):
    """An ``obspy.taup.TauPyModel`` of ``model`` (built once, cached as .npz by content hash).

    ``cache_dir`` defaults to ``~/.cache/firstmotion/taup``.
    """
    from obspy.taup import TauPyModel
    from obspy.taup.taup_create import build_taup_model

    text = taup_nd_text(model)
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    cache = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "firstmotion" / "taup"
    cache.mkdir(parents=True, exist_ok=True)
    stem = f"fm_{digest}"
    npz = cache / f"{stem}.npz"
    if not npz.exists():
        nd = cache / f"{stem}.nd"
        nd.write_text(text)
        build_taup_model(str(nd), output_folder=str(cache), verbose=False)
    return TauPyModel(model=str(npz))
