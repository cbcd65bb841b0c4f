"""Procedural accessories: a deterministic painter, the bundled catalogue, and a contact sheet.

* :func:`generate_accessory`: glasses, hats and ties drawn with anti-aliasing (4x supersampling, premultiplied
  alpha, ``INTER_AREA`` downsampling) and simple shading, deterministic by seed;
* :func:`bundled_accessories` / :func:`accessory_by_name`: the fixed curated list the live app and demo cycle
  through;
* :func:`contact_sheet`: a picture of accessories with their keypoint quads.
  ``python -m realtime.procedural --sheet OUT.png`` writes one.

Only numpy and OpenCV are needed (no torch).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import math
import re
import sys
import zlib
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from realtime.accessories import GEN_MARGIN_PX, Accessory, alpha_bbox_xyxy, load_accessories_dir
from realtime.config import CATEGORIES, check_category

log = logging.getLogger(__name__)

GLASSES_STYLES = ("round", "rectangular", "aviator", "cat_eye", "rimless")
HAT_STYLES = ("cap", "fedora", "beanie", "top_hat", "sun_hat", "bucket")
TIE_STYLES = ("necktie_plain", "necktie_stripes", "necktie_dots", "bow_tie")
STYLES = {"glasses": GLASSES_STYLES, "hat": HAT_STYLES, "tie": TIE_STYLES}

_SS = 4  # supersampling factor of the procedural renderer
_SHIFT = 4  # fixed-point fractional bits handed to cv2 drawing (1/16 px)
_MEASURE_PX = 800  # canvas of the 1x measuring pass (design units, origin at its centre)
# Default canvas width per drawing; the height follows from the drawing's aspect (glasses ~256x80-100, hats
# ~256x90-260, necktie ~90x290-340, bow tie ~160x75). The tight crop can take 2-4 px off the width.
_DEFAULT_WIDTH = {"glasses": 256, "hat": 256, "necktie": 90, "bow_tie": 160}


# ----------------------------------------------------------------------------------------------------------------
# Procedural renderer: geometry in "design units", centred on x = 0 so that mirroring is x -> -x.
# ----------------------------------------------------------------------------------------------------------------

class _Painter:
    """Premultiplied-alpha float canvas, supersampled; shapes are given in design units."""

    def __init__(self, size_wh: tuple[int, int], scale: float, offset_xy: tuple[float, float], ss: int) -> None:
        self.w, self.h = size_wh[0] * ss, size_wh[1] * ss
        self.size_wh, self.s, self.o, self.ss = size_wh, scale, np.asarray(offset_xy, np.float64), ss
        self.rgb = np.zeros((self.h, self.w, 3), np.float32)
        self.a = np.zeros((self.h, self.w), np.float32)

    def _fix(self, pts_xy: np.ndarray) -> np.ndarray:
        # Output pixel i covers [i, i+1); supersampled pixel centre c sits at (c + 0.5) / ss output px.
        p = (np.asarray(pts_xy, np.float64) * self.s + self.o) * self.ss - 0.5
        return np.round(p * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2)

    def fill(self, *polys: np.ndarray) -> np.ndarray:
        mask = np.zeros((self.h, self.w), np.uint8)
        for poly in polys:  # one call per polygon: a single fillPoly call would XOR the overlaps (even-odd rule)
            cv2.fillPoly(mask, [self._fix(poly)], 255, cv2.LINE_AA, _SHIFT)
        return mask

    def stroke(self, pts_xy: np.ndarray, width: float, closed: bool = False) -> np.ndarray:
        mask = np.zeros((self.h, self.w), np.uint8)
        thick = max(1, int(round(width * self.s * self.ss)))
        cv2.polylines(mask, [self._fix(pts_xy)], closed, 255, thick, cv2.LINE_AA, _SHIFT)
        return mask

    def paint(self, mask: np.ndarray, color, alpha=1.0) -> None:
        """Composite ``color`` (RGB 0..255 or f(X, Y) -> (..., 3)) over the canvas through ``mask`` * ``alpha``."""
        x, y, w, h = cv2.boundingRect(mask)
        if w == 0 or h == 0:
            return
        m = mask[y:y + h, x:x + w].astype(np.float32) * (1.0 / 255.0)
        if callable(color) or callable(alpha):
            X, Y = np.meshgrid(((np.arange(x, x + w) + 0.5) / self.ss - self.o[0]) / self.s,
                               ((np.arange(y, y + h) + 0.5) / self.ss - self.o[1]) / self.s)
        m = m * (np.clip(alpha(X, Y), 0.0, 1.0) if callable(alpha) else float(alpha))
        col = np.clip(color(X, Y) if callable(color) else np.asarray(color, np.float32), 0, 255)
        rgb, a = self.rgb[y:y + h, x:x + w], self.a[y:y + h, x:x + w]
        rgb *= (1.0 - m)[..., None]
        rgb += col * m[..., None]
        a *= 1.0 - m
        a += m

    def to_rgba(self) -> np.ndarray:
        size = tuple(self.size_wh)
        rgb = cv2.resize(self.rgb, size, interpolation=cv2.INTER_AREA) if self.ss > 1 else self.rgb
        a = cv2.resize(self.a, size, interpolation=cv2.INTER_AREA) if self.ss > 1 else self.a
        out = np.zeros((size[1], size[0], 4), np.uint8)
        out[..., :3] = np.clip(np.round(rgb / np.maximum(a, 1e-6)[..., None]), 0, 255).astype(np.uint8)
        out[..., 3] = np.clip(np.round(a * 255.0), 0, 255).astype(np.uint8)
        out[out[..., 3] == 0, :3] = 0
        return out


def _ellipse(cx: float, cy: float, ax: float, ay: float, t0: float = 0.0, t1: float = 2 * np.pi,
             n: int = 96) -> np.ndarray:
    t = np.linspace(t0, t1, n)
    return np.stack([cx + ax * np.cos(t), cy + ay * np.sin(t)], 1)


def _superellipse(ax: float, ay: float, p: float, n: int = 128) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    return np.stack([ax * np.sign(c) * np.abs(c) ** (2 / p), ay * np.sign(s) * np.abs(s) ** (2 / p)], 1)


def _bezier(*ctrl_xy: Sequence[float], n: int = 32) -> np.ndarray:
    c = np.asarray(ctrl_xy, np.float64)
    k = len(c) - 1
    t = np.linspace(0, 1, n)[:, None]
    return sum(math.comb(k, i) * t ** i * (1 - t) ** (k - i) * c[i] for i in range(k + 1))


def _mirror(pts_xy: np.ndarray) -> np.ndarray:
    """Mirror x -> -x, reversing the order so the polygon keeps its orientation."""
    return (np.asarray(pts_xy) * [-1.0, 1.0])[::-1]


def _sym(right_half: np.ndarray, *tail: np.ndarray) -> np.ndarray:
    """Closed symmetric outline from a right-half path running bottom -> top-centre, plus optional closing path."""
    return np.concatenate([right_half, _mirror(right_half), *tail])


def _minus(m1: np.ndarray, m2: np.ndarray) -> np.ndarray:
    return cv2.min(m1, 255 - m2)


def _shade(rgb: Sequence[float], gain: Callable[[np.ndarray, np.ndarray], np.ndarray]):
    base = np.asarray(rgb, np.float32)
    return lambda X, Y: base * gain(X, Y)[..., None]


def _waves(X: np.ndarray, Y: np.ndarray, waves: np.ndarray) -> np.ndarray:
    """Smooth pseudo-noise, roughly in [-1, 1]: a sum of plane waves (rows kx, ky, phase), resolution independent."""
    acc = sum(np.sin(kx * X + ky * Y + ph) for kx, ky, ph in waves)
    return acc / max(1.0, math.sqrt(len(waves) / 2))


def _jitter(rng: np.random.Generator, rgb: Sequence[float], amount: float = 12.0) -> tuple[float, float, float]:
    return tuple(float(v) for v in np.clip(np.asarray(rgb) + rng.uniform(-amount, amount, 3), 0, 255))


def _pick(rng: np.random.Generator, seq: Sequence):
    return seq[int(rng.integers(len(seq)))]


# ------------------------------------------------------------------ glasses: lenses at x = -cx (left), +cx (right)
_ACETATE = ((22, 22, 25), (60, 35, 20), (32, 40, 78), (105, 24, 38), (120, 120, 128), (150, 110, 70), (20, 70, 70))
_METAL = ((205, 165, 80), (190, 190, 196), (85, 87, 94), (200, 140, 118))
_TINTS = ((45, 45, 50), (95, 62, 30), (40, 72, 48), (36, 66, 125), (165, 75, 100))


def _glasses_params(style: str, rng: np.random.Generator) -> dict:
    a = rng.uniform(40, 46)
    aspect = {"round": (0.86, 0.96), "rectangular": (0.56, 0.68), "aviator": (0.80, 0.90),
              "cat_eye": (0.62, 0.72), "rimless": (0.60, 0.74)}[style]
    metal = style in ("aviator", "rimless") or (style == "round" and rng.random() < 0.4)
    tinted = rng.random() < {"aviator": 0.85, "cat_eye": 0.5, "rimless": 0.15}.get(style, 0.35)
    return dict(
        style=style, a=a, b=a * rng.uniform(*aspect), gap=rng.uniform(7, 11), metal=metal,
        t=rng.uniform(1.8, 2.8) if metal else rng.uniform(3.5, 7.0),
        frame=_jitter(rng, _pick(rng, _METAL if metal else _ACETATE)),
        tortoise=(not metal) and rng.random() < 0.3, waves=rng.uniform([-0.25, -0.25, 0], [0.25, 0.25, 6.3], (6, 3)),
        tinted=tinted, lens=_jitter(rng, _pick(rng, _TINTS)) if tinted else _jitter(rng, (205, 225, 240), 10),
        lens_alpha=rng.uniform(120, 180) if tinted else rng.uniform(40, 60),
        gradient=tinted and rng.random() < 0.5, p=rng.uniform(3.2, 4.8), taper=rng.uniform(0.02, 0.10),
        stub=rng.uniform(5, 9), lift=rng.uniform(0.45, 0.65))


def _lens_outline(prm: dict) -> np.ndarray:
    """Left lens outline in local (u, v) coordinates, u pointing to the nose, v down."""
    style, a, b = prm["style"], prm["a"], prm["b"]
    if style == "round":
        return _ellipse(0, 0, a, b, n=128)
    if style in ("rectangular", "rimless"):
        uv = _superellipse(a, b, prm["p"] if style == "rectangular" else 2.8)
        uv[:, 0] *= 1 - prm["taper"] * (uv[:, 1] / b + 1) / 2  # slightly narrower at the bottom
        return uv
    if style == "aviator":  # teardrop: flat top, deep bottom pulled towards the nose
        uv = _superellipse(a, b, 2.3)
        u, v = uv[:, 0], uv[:, 1]
        top = v < 0
        v = np.where(top, v * 0.72, v * 1.12)
        u = np.where(top, u, u + 0.22 * a * (v / b) ** 2)
        return np.stack([u, v], 1)
    uv = _superellipse(a, b, 2.6)  # cat eye: outer top corner swept up and out
    u, v = uv[:, 0], uv[:, 1]
    w = np.clip(-u / a, 0, 1) ** 2 * np.clip(-v / b, 0, 1)
    return np.stack([u - 0.12 * a * w, v - prm["lift"] * b * w], 1)


def _draw_glasses(p: _Painter, prm: dict) -> None:
    uv = _lens_outline(prm)
    t, b, style = prm["t"], prm["b"], prm["style"]
    rim = 0.0 if style == "rimless" else t
    cx = prm["gap"] + rim + uv[:, 0].max()
    left = np.stack([uv[:, 0] - cx, uv[:, 1]], 1)
    lenses = (left, _mirror(left))
    y_top, y_bot = uv[:, 1].min(), uv[:, 1].max()
    span = y_bot - y_top + 2 * t

    def frame_gain(X, Y):
        g = 1.2 - 0.45 * (Y - y_top + t) / span
        if prm["metal"]:  # metal: a bright specular band near the top
            g = 0.85 + 0.45 * np.exp(-(((Y - y_top) / (0.25 * span)) ** 2))
        return g

    frame = _shade(prm["frame"], frame_gain)
    if prm["tortoise"]:
        dark, amber = np.array([40, 22, 12], np.float32), np.array([165, 100, 45], np.float32)
        frame = lambda X, Y: (amber + (dark - amber) / (1 + np.exp(-3 * _waves(X, Y, prm["waves"])))[..., None]
                              ) * frame_gain(X, Y)[..., None]
    temple_rgb = tuple(0.7 * c for c in prm["frame"])

    # Temple stubs (behind the frame): hinge height near the top outer corner.
    v_h = y_top * (0.8 if style == "aviator" else 0.5)
    near = np.abs(uv[:, 1] - v_h) < 0.2 * b
    x_out = (uv[near, 0] if near.any() else uv[:, 0]).min() - cx - rim
    th = max(2.4, 1.1 * t) if not prm["metal"] else 2.2
    for sgn in (1, -1):
        stub = np.array([[x_out + 0.5 * t + 1, v_h], [x_out - prm["stub"], v_h]]) * [sgn, 1]
        p.paint(p.stroke(stub, th), temple_rgb)

    for lens in lenses:
        m_lens = p.fill(lens)
        top_dark = (lambda X, Y: 1 - 0.35 * np.clip((y_bot - Y) / (y_bot - y_top), 0, 1)) if prm["tinted"] \
            else (lambda X, Y: np.ones_like(X))
        la = prm["lens_alpha"] / 255
        alpha = (lambda X, Y: la * (0.55 + 0.55 * np.clip((y_bot - Y) / (y_bot - y_top), 0, 1))) \
            if prm["gradient"] else la
        p.paint(m_lens, _shade(prm["lens"], top_dark), alpha)
        # Reflection streaks, clipped to the lens.
        c = lens.mean(0)
        a = prm["a"]
        for off, wid, al in ((-0.35, 0.22, 0.30), (0.05, 0.08, 0.22)):
            d = np.array([0.45, -0.9]) * a
            q = c + [off * a, -0.05 * b]
            streak = np.array([q - d, q - d + [wid * a, 0], q + d + [wid * a, 0], q + d])
            p.paint(cv2.min(p.fill(streak), m_lens), (255, 255, 255), al)
        if style == "rimless":  # bevelled lens edge: a bright rim with a faint dark inner line
            p.paint(cv2.min(p.stroke(lens, 2.4, closed=True), m_lens), (200, 214, 228), 0.8)
            p.paint(cv2.min(p.stroke(lens, 0.8, closed=True), m_lens), (110, 120, 132), 0.5)
        else:
            p.paint(_minus(p.stroke(lens, 2 * rim, closed=True), m_lens), frame)
            if style == "cat_eye":  # upswept wing: frame flares up and out at the outer top corner
                sgn, a = np.sign(lens[0, 0]), prm["a"]
                x_o = sgn * (cx - uv[:, 0].min() + rim)  # outer edge of the frame
                apex = [x_o + sgn * 0.9 * rim, y_top - 1.2 * rim]
                top = _bezier([sgn * (cx - 0.1 * a), y_top - rim], [sgn * (cx + 0.6 * a), y_top - 1.6 * rim], apex)
                side = _bezier(apex, [x_o + sgn * 0.2 * rim, -0.3 * b], [x_o - sgn * 0.5 * rim, 0.1 * b])
                wing = np.concatenate([top, side, [[sgn * cx, 0.0]]])
                p.paint(_minus(p.fill(wing), m_lens), frame)
            # Specular line along the upper rim.
            up = lens[lens[:, 1] < -0.45 * b]
            ctr = np.array([np.sign(up[0, 0]) * cx, 0.0])
            p.paint(p.stroke(ctr + (up - ctr) * (1 + 0.5 * rim / prm["a"]), 0.3 * rim + 0.4), (255, 255, 255), 0.28)

    # Bridge(s) and nose pads.
    if style == "aviator":
        p.paint(p.stroke(_bezier([-cx + 0.2 * prm["a"], y_top + 0.3 * t], [0, y_top - 0.4 * t],
                                 [cx - 0.2 * prm["a"], y_top + 0.3 * t]), 1.3 * t), frame)
    inner = cx - uv[:, 0].max() - 0.5 * rim
    yb = y_top * 0.35
    p.paint(p.stroke(_bezier([-inner - 1, yb], [0, yb - 0.35 * b], [inner + 1, yb]), max(1.5 * t, 2.4)), frame)
    if prm["metal"]:
        for sgn in (1, -1):
            p.paint(p.stroke(np.array([[sgn * (inner - 1), yb], [sgn * (inner - 4), 0.3 * b]]), 1.2), frame)
            p.paint(p.fill(_ellipse(sgn * (inner - 4.5), 0.38 * b, 2.6, 4.5)), (235, 235, 230), 0.55)
    if style == "rimless":
        for sgn in (1, -1):
            for x in (inner + 1, x_out + 2):
                p.paint(p.fill(_ellipse(sgn * x, yb if x == inner + 1 else v_h, 1.8, 1.8)), (120, 120, 125))
    elif not prm["metal"]:
        for sgn in (1, -1):  # hinge rivets
            p.paint(p.fill(_ellipse(sgn * (x_out + 0.5 * rim + 0.5), v_h, 1.2, 1.2)), (210, 210, 215), 0.9)


# ------------------------------------------------------------------ hats: y = 0 on the crown base, crown upwards
_FELT = ((58, 58, 64), (105, 75, 50), (170, 140, 100), (40, 45, 72), (30, 30, 33), (122, 122, 128), (212, 200, 176))
_BRIGHT = ((200, 40, 45), (35, 70, 150), (30, 110, 70), (235, 235, 235), (25, 25, 28), (230, 150, 40),
           (120, 60, 140), (110, 160, 210))
_STRAW = ((222, 190, 130), (236, 216, 172), (242, 238, 228), (60, 52, 45), (232, 185, 180))
_CANVAS = ((190, 170, 120), (70, 95, 140), (35, 35, 38), (100, 105, 70), (235, 235, 228))


def _hat_params(style: str, rng: np.random.Generator) -> dict:
    palette = {"cap": _BRIGHT, "beanie": _BRIGHT, "sun_hat": _STRAW, "bucket": _CANVAS}.get(style, _FELT)
    body = _jitter(rng, _pick(rng, palette))
    band = _jitter(rng, _pick(rng, _BRIGHT if style in ("sun_hat", "beanie", "cap") else
                              ((25, 25, 28), (70, 40, 25), (120, 25, 35), (45, 45, 60), (160, 150, 140))))
    u = rng.uniform
    return dict(style=style, body=body, band=band, R=125.0, cw=u(0.9, 1.1), ch=u(0.9, 1.1), rb=u(0.85, 1.15),
                band_h=u(0.8, 1.2), extra=u(0.0, 1.0), flag=rng.random() < 0.55, flag2=rng.random() < 0.5,
                k=int(_pick(rng, (6, 8, 10))))


def _band(p: _Painter, crown: np.ndarray, cw: float, e: float, y0: float, h: float, color) -> None:
    top = _ellipse(0, y0 - h, cw * 1.1, e, np.pi, 0)
    bot = _ellipse(0, y0 + 1, cw * 1.1, e, 0, np.pi)
    p.paint(cv2.min(p.fill(np.concatenate([top, bot])), crown), color)


def _draw_hat(p: _Painter, prm: dict) -> None:
    style, R, body = prm["style"], prm["R"], prm["body"]
    dark = tuple(0.6 * c for c in body)
    x_light = -0.3  # light comes from the upper left

    def cyl(cw, lo=0.72, hi=1.18):
        return _shade(body, lambda X, Y: lo + (hi - lo) * np.clip(1 - ((X / cw - x_light) / 1.25) ** 2, 0, 1))

    def brim(rb, dip, up, droop=0.0, waves=0):
        th = np.linspace(0, 2 * np.pi, 192, endpoint=False)
        r = 1 + (0.02 * np.cos(waves * th) if waves else 0)
        x, y = R * r * np.cos(th), rb * r * np.sin(th)
        y = y + np.where(y > 0, dip * (1 - (x / R) ** 2) ** 2, 0) - up * (x / R) ** 6 + droop * (x / R) ** 2
        return np.stack([x, y], 1)

    def paint_brim(outline, thick, gain_top=1.05):
        p.paint(p.fill(outline + [0, thick]), dark)
        p.paint(p.fill(outline), _shade(body, lambda X, Y: gain_top - 0.18 * np.abs(X) / R + 0.12 * Y / R))

    if style == "fedora":
        cw, ch, rb = 68 * prm["cw"], 88 * prm["ch"], 17 * prm["rb"]
        e, tw, pinch = rb * cw / R, cw * 0.84, 6 + 5 * prm["extra"]
        paint_brim(brim(rb, 7, 6), 3.5)
        right = np.concatenate([_bezier([cw, 0], [cw, -0.55 * ch], [tw, -0.9 * ch]),
                                _bezier([tw, -0.9 * ch], [tw * 0.9, -1.06 * ch], [tw * 0.35, -1.02 * ch],
                                        [0, -ch + pinch])])
        crown = p.fill(_sym(right, _ellipse(0, 0, cw, e, np.pi, 0)))
        p.paint(crown, cyl(cw))
        for sgn in (1, -1):  # front pinch creases
            p.paint(cv2.min(p.stroke(_bezier([sgn * tw * 0.22, -ch + pinch + 2], [sgn * tw * 0.5, -0.75 * ch],
                                             [sgn * cw * 0.42, -0.45 * ch]), 3.0), crown), dark, 0.35)
        _band(p, crown, cw, e, 0, 14 * prm["band_h"], _shade(prm["band"], lambda X, Y: 1.1 - 0.3 * (X / cw) ** 2))
    elif style == "top_hat":
        cw, ch = 60 * prm["cw"], 130 * prm["ch"]
        fw, rb = cw * (1.0 + 0.1 * prm["extra"]), 13 * prm["rb"]
        R = cw + 30
        e, et = rb * cw / R, fw * 0.17
        th = np.linspace(0, 2 * np.pi, 160, endpoint=False)
        x, y = R * np.cos(th), rb * np.sin(th)
        outline = np.stack([x, y - 11 * (x / R) ** 4], 1)  # brim curled up at the sides
        p.paint(p.fill(outline + [0, 3]), dark)
        p.paint(p.fill(outline), _shade(body, lambda X, Y: 1.0 - 0.2 * np.abs(X) / R))
        right = _bezier([cw, 0], [cw * 0.95, -0.5 * ch], [fw, -ch])
        crown = p.fill(_sym(right, _ellipse(0, 0, cw, e, np.pi, 0)), _ellipse(0, -ch, fw, et))
        p.paint(crown, cyl(cw, 0.55, 1.25))
        p.paint(p.fill(_ellipse(0, -ch, fw, et)), _shade(body, lambda X, Y: 1.25 - 0.15 * (Y + ch) / et))
        _band(p, crown, cw, e, 0, 20 * prm["band_h"], _shade(prm["band"], lambda X, Y: 1.15 - 0.4 * (X / cw) ** 2))
    elif style == "cap":
        cw, ch, e = 96 * prm["cw"], 92 * prm["ch"], 12.0
        dome = _bezier([cw, 0], [cw, -0.62 * ch], [0.55 * cw, -1.0 * ch], [0, -ch])
        crown = p.fill(_sym(dome, _ellipse(0, 0, cw, e, np.pi, 0)))
        p.paint(crown, _shade(body, lambda X, Y: 1.2 - 0.35 * ((X / cw + 0.25) ** 2 + ((Y + 0.6 * ch) / ch) ** 2)))
        seam = dict(color=dark, alpha=0.4)
        p.paint(cv2.min(p.stroke(np.array([[0, -ch], [0, e]]), 1.3), crown), **seam)
        for sgn in (1, -1):
            p.paint(cv2.min(p.stroke(_bezier([0, -ch], [sgn * 0.62 * cw, -0.85 * ch], [sgn * 0.68 * cw, e]), 1.3),
                            crown), **seam)
            p.paint(p.fill(_ellipse(sgn * 0.45 * cw, -0.72 * ch, 2.4, 2.0)), dark, 0.7)  # eyelets
        if prm["flag"]:  # front patch
            p.paint(p.fill(_superellipse(22, 14, 4) + [0, -0.42 * ch]), prm["band"])
        p.paint(p.fill(_ellipse(0, -ch, 8, 4)), tuple(min(255, 1.15 * c) for c in body))  # button
        vw, vd = cw * (0.84 + 0.08 * prm["extra"]), 34 * prm["rb"]
        visor = np.concatenate([_ellipse(0, 0, vw, e * vw / cw, np.pi, 0), _ellipse(0, 0, vw, e + vd, 0, np.pi)])
        vis_rgb = prm["band"] if prm["flag2"] else body
        p.paint(p.fill(visor), _shade(vis_rgb, lambda X, Y: 1.18 - 0.3 * (X / vw) ** 2 - 0.25 * Y / (e + vd)))
        p.paint(p.fill(_ellipse(0, 0, vw, e * vw / cw + 3, 0, np.pi)), (0, 0, 0), 0.25)  # shadow under the crown
        p.paint(p.stroke(_ellipse(0, -1.5, vw, e + vd, 0.05, np.pi - 0.05), 2.5),
                tuple(0.55 * c for c in vis_rgb))
        p.paint(p.stroke(_ellipse(0, 0, vw * 0.96, e + vd * 0.75, 0.15, np.pi - 0.15), 0.9), (255, 255, 255), 0.3)
    elif style == "beanie":
        cw, ch, cf, e = 95 * prm["cw"], 102 * prm["ch"], 30 * prm["band_h"], 9.0
        dome = p.fill(_ellipse(0, -cf, cw * 0.97, ch, 0, -np.pi), _ellipse(0, -cf, cw * 0.97, e + 4, np.pi, 0))
        p.paint(dome, _shade(body, lambda X, Y: 1.18 - 0.4 * ((X / cw + 0.3) ** 2 + ((Y + cf + 0.6 * ch) / ch) ** 2)))
        if prm["flag2"]:  # knitted stripe
            p.paint(cv2.min(p.fill(np.concatenate([_ellipse(0, -cf - 0.42 * ch, cw * 1.1, e, np.pi, 0),
                                                   _ellipse(0, -cf - 0.28 * ch, cw * 1.1, e, 0, np.pi)])), dome),
                    _shade(prm["band"], lambda X, Y: 1.1 - 0.3 * (X / cw) ** 2))
        for x in np.arange(-cw + 8, cw - 4, 10.0):  # knit ribs converging to the top
            rib = _bezier([x, -cf], [x, -cf - 0.6 * ch], [0.15 * x, -cf - 0.98 * ch])
            p.paint(cv2.min(p.stroke(rib, 1.6), dome), dark, 0.16)
        cuff = p.fill(np.concatenate([_ellipse(0, -cf, cw, e, np.pi, 0), _ellipse(0, 0, cw, e, 0, np.pi)]))
        p.paint(cuff, cyl(cw, 0.78, 1.12))
        for x in np.arange(-cw + 4, cw, 7.0):
            y_t, y_b = -cf + e * math.sqrt(max(0.0, 1 - (x / cw) ** 2)), e * math.sqrt(max(0.0, 1 - (x / cw) ** 2))
            p.paint(cv2.min(p.stroke(np.array([[x, y_t + 1], [x, y_b - 1]]), 2.2), cuff), dark, 0.25)
        if prm["flag"]:  # pompom with a fluffy edge
            r = 17 + 6 * prm["extra"]
            th = np.linspace(0, 2 * np.pi, 180, endpoint=False)
            rr = r * (1 + 0.06 * np.cos(18 * th) + 0.035 * np.cos(26 * th))
            pom = p.fill(np.stack([rr * np.cos(th), -cf - ch - 0.55 * r + rr * np.sin(th)], 1))
            cy = -cf - ch - 0.55 * r
            pom_rgb = prm["band"] if prm["flag2"] else body
            p.paint(pom, _shade(pom_rgb, lambda X, Y: (1.2 - 0.45 * ((X + 0.3 * r) ** 2 + (Y - cy + 0.3 * r) ** 2)
                                                       / r ** 2) * (1 + 0.08 * np.sin(X * 1.7) * np.sin(Y * 1.9))))
    elif style == "sun_hat":
        rb, cw, ch = 30 * prm["rb"], 52 * prm["cw"], 48 * prm["ch"]
        e = rb * cw / R
        outline = brim(rb, 4, -3, droop=4, waves=prm["k"])
        straw = lambda rgb: _shade(rgb, lambda X, Y: (1.08 - 0.15 * np.abs(X) / R)
                                   * (1 + 0.05 * np.sin(np.hypot(X, Y * R / rb) * 0.9)))
        p.paint(p.fill(outline + [0, 3]), dark)
        p.paint(p.fill(outline), straw(body))
        crown = p.fill(_ellipse(0, 0, cw, ch, 0, -np.pi), _ellipse(0, 0, cw, e, np.pi, 0))
        p.paint(crown, _shade(body, lambda X, Y: (1.15 - 0.35 * ((X / cw + 0.3) ** 2 + ((Y + 0.5 * ch) / ch) ** 2))
                              * (1 + 0.05 * np.sin(X * 1.1) * np.sin(Y * 1.1))))
        bh = 12 * prm["band_h"]
        _band(p, crown, cw, e, 0, bh, _shade(prm["band"], lambda X, Y: 1.1 - 0.3 * (X / cw) ** 2))
        bx, by = 0.55 * cw, -bh / 2 + e * 0.6  # small bow on the band
        for sgn in (1, -1):
            wing = np.array([[bx, by], [bx + sgn * 11, by - 7], [bx + sgn * 12, by + 7]])
            p.paint(p.fill(wing), _shade(prm["band"], lambda X, Y: 0.95 + 0.2 * np.abs(X - bx) / 12))
        p.paint(p.fill(_ellipse(bx, by, 3.2, 4.0)), tuple(0.8 * c for c in prm["band"]))
    elif style == "bucket":
        cw, ch, e = 80 * prm["cw"], 60 * prm["ch"], 10.0
        tw, R2, bd = cw * 0.82, cw + 38, 30 * prm["rb"]
        right = np.concatenate([np.array([[cw, 0]]), _bezier([tw, -0.82 * ch], [tw, -1.0 * ch], [tw * 0.75, -1.03 * ch],
                                                             [0, -1.05 * ch])])
        crown = p.fill(_sym(right, _ellipse(0, 0, cw, e, np.pi, 0)))
        p.paint(crown, cyl(cw, 0.7, 1.12))
        for k in (0.25, 0.45):  # stitching rows around the crown
            pts = _ellipse(0, -k * ch, cw * (1 - 0.18 * k) - 2, e, np.pi, 0, n=80)
            for i in range(0, len(pts) - 1, 2):
                p.paint(cv2.min(p.stroke(pts[i:i + 2], 1.0), crown), dark, 0.45)
        top = _ellipse(0, 0, cw, e, np.pi, 0)
        bot = _ellipse(0, 0.5 * bd, R2, 0.5 * bd + e, 0, np.pi)
        p.paint(p.fill(np.concatenate([top, bot])),
                _shade(body, lambda X, Y: 1.1 - 0.25 * np.abs(X) / R2 - 0.25 * Y / (bd + e)))
        for f in (0.3, 0.55, 0.8):
            pts = (1 - f) * top + f * bot[::-1]
            for i in range(0, len(pts) - 1, 2):
                p.paint(p.stroke(pts[i:i + 2], 1.0), dark, 0.45)


# ------------------------------------------------------------------ ties: y = 0 at the top, x = 0 on the axis
_TIE_RGB = ((30, 40, 85), (115, 22, 38), (30, 80, 50), (25, 25, 28), (150, 150, 158), (40, 80, 170), (185, 30, 35))
_TIE_ACCENT = ((220, 180, 70), (240, 240, 235), (200, 40, 45), (150, 190, 230), (230, 140, 40))


def _tie_params(style: str, rng: np.random.Generator) -> dict:
    base = _jitter(rng, _pick(rng, _TIE_RGB))
    pattern = style.split("_")[1] if style.startswith("necktie") else _pick(rng, ("plain", "stripes", "dots"))
    return dict(style=style, pattern=pattern, base=base, accent=_jitter(rng, _pick(rng, _TIE_ACCENT)),
                period=rng.uniform(11, 17) * (0.65 if style == "bow_tie" else 1.0),  # finer on the small bow tie
                frac=rng.uniform(0.2, 0.4), dot_r=rng.uniform(1.6, 3.0),
                u=rng.uniform(0.92, 1.08, 4), phase=rng.uniform(0, 1))


def _tie_fabric(prm: dict, gain: Callable, flip: bool = False):
    base, acc = np.asarray(prm["base"], np.float32), np.asarray(prm["accent"], np.float32)
    per = prm["period"]

    def color(X, Y):
        if prm["pattern"] == "stripes":  # regimental stripes at 45 deg (the knot wraps the other way)
            s = ((X * (-1 if flip else 1) + Y) / math.sqrt(2) / per + prm["phase"]) % 1.0
            w = (s < prm["frac"]).astype(np.float32)
            w += 0.6 * ((s > prm["frac"] + 0.12) & (s < prm["frac"] + 0.17))  # thin secondary stripe
            rgb = base + (acc - base) * np.clip(w, 0, 1)[..., None]
        elif prm["pattern"] == "dots":
            gy = Y / per
            row = np.floor(gy)
            gx = X / per + 0.5 * (row % 2)
            d = np.hypot(gx - np.round(gx), gy - row - 0.5) * per
            rgb = base + (acc - base) * (d < prm["dot_r"]).astype(np.float32)[..., None]
        else:  # plain: a faint diagonal twill
            rgb = base * (1 + 0.04 * np.sin((X - Y) * 2.2))[..., None]
        return rgb * gain(X, Y)[..., None]

    return color


def _draw_tie(p: _Painter, prm: dict) -> None:
    u = prm["u"]
    if prm["style"] == "bow_tie":
        kw, kh = 10 * u[0], 14 * u[1]
        xo, ho = 68 * u[2], 27 * u[3]
        upper = np.concatenate([_bezier([xo * 0.97, 0], [xo * 1.05, -ho * 0.7], [xo * 0.95, -ho]),
                                _bezier([xo * 0.95, -ho], [xo * 0.7, -ho * 1.1], [xo * 0.3, -ho * 0.5],
                                        [kw * 0.5, -kh * 0.7])])
        wing = np.concatenate([upper[::-1] * [1, -1], upper])  # outer edge: rounded, with a slight dent at the middle
        gain = lambda X, Y: (0.72 + 0.38 * np.clip(np.abs(X) / xo, 0, 1) ** 0.7) * (1.08 - 0.12 * Y / ho)
        for w in (wing, _mirror(wing)):
            m = p.fill(w)
            p.paint(m, _tie_fabric(prm, gain))
            sgn = np.sign(w[:, 0].mean())
            for fy in (-0.35, 0.35):  # folds from the knot
                fold = _bezier([sgn * kw, fy * kh * 0.6], [sgn * xo * 0.45, fy * ho * 0.5], [sgn * xo * 0.85, fy * ho])
                p.paint(cv2.min(p.stroke(fold, 2.0), m), (0, 0, 0), 0.22)
        knot = _superellipse(kw, kh, 4)
        p.paint(p.fill(knot), _tie_fabric(prm, lambda X, Y: 0.85 - 0.2 * Y / kh - 0.15 * (X / kw) ** 2, flip=True))
        p.paint(p.stroke(knot, 1.6, closed=True), (0, 0, 0), 0.4)  # crease where the knot wraps the wings
        return
    kt, kh = 23 * u[0], 38 * u[1]
    kb, bw, length = 0.68 * kt, 41 * u[2], 320 * u[3]
    tip = bw * 0.95
    blade = np.array([[-kb * 0.95, kh - 4], [kb * 0.95, kh - 4], [bw, length - tip], [0, length], [-bw, length - tip]])
    half_w = lambda Y: np.interp(Y, [kh, length - tip, length], [kb, bw, 0.0]) + 1e-3
    gain = lambda X, Y: (1.08 - 0.25 * (X / half_w(Y) + 0.15) ** 2) * (1 - 0.35 * np.exp(-np.maximum(Y - kh, 0) / 8))
    m_blade = p.fill(blade)
    p.paint(m_blade, _tie_fabric(prm, gain))
    p.paint(cv2.min(p.stroke(np.array([[0, kh], [0.5, kh + 20]]), 1.4), m_blade), (0, 0, 0), 0.3)  # dimple
    side = _bezier([kt, 0], [kt * 0.9, kh * 0.6], [kb, kh])
    knot = np.concatenate([_bezier([-kt, 0], [0, -3], [kt, 0]), side, _bezier([kb, kh], [0, kh + 3], [-kb, kh]),
                           _mirror(side)])
    m_knot = p.fill(knot)
    p.paint(m_knot, _tie_fabric(prm, lambda X, Y: (1.12 - 0.3 * Y / kh) * (1 - 0.25 * (X / kt) ** 2), flip=True))
    for sgn in (1, -1):
        p.paint(cv2.min(p.stroke(_bezier([sgn * kt * 0.8, 3], [sgn * kt * 0.35, kh * 0.5], [sgn * kb * 0.3, kh]), 1.6),
                        m_knot), (0, 0, 0), 0.25)


_DRAW = {"glasses": (_glasses_params, _draw_glasses), "hat": (_hat_params, _draw_hat), "tie": (_tie_params, _draw_tie)}


def _render(draw: Callable[[_Painter, dict], None], prm: dict, size: tuple[int, int] | None,
            default_w: int) -> np.ndarray:
    # Pass 1 (1x, design units = pixels) measures the drawing's extent; pass 2 draws it fitted to the canvas.
    half = _MEASURE_PX / 2
    probe = _Painter((_MEASURE_PX, _MEASURE_PX), 1.0, (half, half), 1)
    draw(probe, prm)
    box = alpha_bbox_xyxy(np.round(probe.a * 255))
    if box is None or min(box) == 0 or max(box) >= _MEASURE_PX - 1:
        raise RuntimeError(f"procedural drawing {prm.get('style')!r} is empty or exceeds the measuring canvas")
    dx0, dy0, dw, dh = box[0] - half, box[1] - half, box[2] - box[0] + 1, box[3] - box[1] + 1
    m = GEN_MARGIN_PX
    if size is None:
        scale = (default_w - 2 * m) / dw
        size = (default_w, int(math.ceil(dh * scale)) + 2 * m)
    elif min(size) <= 2 * m + 4:
        raise ValueError(f"accessory size {size} too small (needs > {2 * m + 4} px per side)")
    else:
        scale = min((size[0] - 2 * m) / dw, (size[1] - 2 * m) / dh)
    off = ((size[0] - dw * scale) / 2 - dx0 * scale, (size[1] - dh * scale) / 2 - dy0 * scale)
    painter = _Painter((int(size[0]), int(size[1])), scale, off, _SS)
    draw(painter, prm)
    return painter.to_rgba()


def generate_accessory(category: str, style: str | None = None, seed: int = 0,
                       size: tuple[int, int] | None = None) -> Accessory:
    """Draw a procedural accessory, deterministic by (category, style, seed).

    Args:
        category: "glasses", "hat" or "tie".
        style: One of the category's styles (:data:`GLASSES_STYLES`, :data:`HAT_STYLES`, :data:`TIE_STYLES`);
            None picks one from the seed.
        seed: Non-negative integer; the same seed gives the same pixels, another seed another variant.
        size: Canvas (width, height). None: about the category's default width (256 glasses/hats, 90 necktie,
            160 bow tie) and the height the drawing needs, cropped to exactly :data:`GEN_MARGIN_PX` px of margin
            all round. Given: exactly that canvas, the drawing scaled uniformly and centred to fit inside it minus
            that margin.

    Returns:
        An Accessory named ``"<category>/<style>-<seed>"`` with source ``"procedural:<style>:<seed>"``.
    """
    styles = STYLES[check_category(category)]
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if style is None:
        style = styles[int(np.random.default_rng([int(seed), zlib.crc32(category.encode())]).integers(len(styles)))]
    if style not in styles:
        raise ValueError(f"unknown {category} style {style!r}; expected one of {styles}")
    # crc32 (not hash()) keeps the stream identical across processes and Python versions.
    rng = np.random.default_rng([int(seed), zlib.crc32(f"{category}/{style}".encode())])
    make_params, draw = _DRAW[category]
    default_w = _DEFAULT_WIDTH.get(style, _DEFAULT_WIDTH.get("necktie" if category == "tie" else category))
    rgba = _render(draw, make_params(style, rng), size, default_w)
    acc = Accessory(f"{category}/{style}-{seed}", category, rgba, f"procedural:{style}:{seed}")
    return acc.cropped(GEN_MARGIN_PX) if size is None else acc


# (style, seed[, label]) per category; seeds picked by eye from the contact sheets for variety (tinted and clear
# lenses, different colours). The first entry of a style is named "<category>/<style>", later ones
# "<category>/<style>-<seed>" (lookup names); the label is what the user sees (Accessory.title).
_BUNDLED = {
    "glasses": (("rectangular", 1), ("round", 0), ("aviator", 1), ("cat_eye", 1), ("rimless", 0),
                ("rectangular", 6, "rectangular, tinted")),
    "hat": (("cap", 2), ("fedora", 3), ("beanie", 3), ("top_hat", 1), ("sun_hat", 2), ("bucket", 2)),
    "tie": (("necktie_plain", 6, "necktie"), ("necktie_stripes", 5, "striped necktie"),
            ("necktie_dots", 0, "dotted necktie"), ("bow_tie", 0), ("bow_tie", 12, "bow tie, dotted")),
}


@functools.lru_cache(maxsize=None)
def _bundled(category: str) -> tuple[Accessory, ...]:
    out, seen = [], set()
    for style, seed, *label in _BUNDLED[category]:
        acc = generate_accessory(category, style, seed)
        if style not in seen:
            acc.name = f"{category}/{style}"
        acc.label = label[0] if label else ""
        seen.add(style)
        acc.rgba.setflags(write=False)  # shared by the cache; callers get copies
        out.append(acc)
    return tuple(out)


def bundled_accessories(category: str) -> list[Accessory]:
    """The fixed, curated accessories of a category (fresh copies, safe to modify), in display order."""
    return [dataclasses.replace(a, rgba=a.rgba.copy()) for a in _bundled(check_category(category))]


def accessory_by_name(name: str) -> Accessory:
    """Resolve ``"<category>/<style>"`` (bundled) or ``"<category>/<style>-<seed>"`` (bundled or generated)."""
    category, _, rest = name.partition("/")
    if category in CATEGORIES:
        for acc in bundled_accessories(category):
            if acc.name == name:
                return acc
        match = re.fullmatch(r"([a-z_]+)-(\d+)", rest)
        if match and match.group(1) in STYLES[category]:
            return generate_accessory(category, match.group(1), int(match.group(2)))
    known = [a.name for c in CATEGORIES for a in _bundled(c)]
    raise ValueError(f"unknown accessory name {name!r}: use '<category>/<style>' or '<category>/<style>-<seed>' "
                     f"(categories {CATEGORIES}); bundled: {', '.join(known)}")


# ----------------------------------------------------------------------------------------------------------------
# Contact sheet + CLI
# ----------------------------------------------------------------------------------------------------------------

def contact_sheet(accessories: Sequence[Accessory], cols: int = 6, cell: int = 160) -> np.ndarray:
    """RGB uint8 grid: each accessory over a checkerboard, its keypoint quad (green, red dot = vertex 0), its name.

    Args:
        accessories: What to show (at least one).
        cols: Cells per row.
        cell: Square cell size in px; a 20-px label strip goes underneath.
    """
    if not accessories:
        raise ValueError("contact_sheet needs at least one accessory")
    cols = max(1, min(cols, len(accessories)))
    rows, label_h, pad = -(-len(accessories) // cols), 20, 6
    sheet = np.full((rows * (cell + label_h), cols * cell, 3), 255, np.uint8)
    yy, xx = np.mgrid[0:cell, 0:cell]
    checker = np.where(((yy // 8 + xx // 8) % 2)[..., None] == 0, 235, 200).astype(np.float32) * np.ones(3)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for i, acc in enumerate(accessories):
        ox, oy = (i % cols) * cell, (i // cols) * (cell + label_h)
        w, h = acc.size_wh
        s = min((cell - 2 * pad) / w, (cell - 2 * pad) / h)
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        a = acc.rgba[..., 3:].astype(np.float32) / 255
        prem = np.dstack([acc.rgba[..., :3].astype(np.float32) * a, a])  # premultiplied: no dark fringes
        small = cv2.resize(prem, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        tile = checker.copy()
        x0, y0 = (cell - nw) // 2, (cell - nh) // 2
        tile[y0:y0 + nh, x0:x0 + nw] = small[..., :3] + tile[y0:y0 + nh, x0:x0 + nw] * (1 - small[..., 3:])
        tile = np.clip(np.round(tile), 0, 255).astype(np.uint8)
        try:
            quad = (acc.init_vertex_xy + 0.5) * [nw / w, nh / h] - 0.5 + [x0, y0]
            cv2.polylines(tile, [np.round(quad * 16).astype(np.int32)], True, (0, 170, 60), 1, cv2.LINE_AA, 4)
            cv2.circle(tile, tuple(int(v) for v in np.round(quad[0] * 16)), 3 * 16, (220, 30, 30), -1, cv2.LINE_AA, 4)
        except ValueError:
            pass  # empty alpha: nothing to outline
        sheet[oy:oy + cell, ox:ox + cell] = tile
        text, scale = acc.name, 0.4
        while cv2.getTextSize(text, font, scale, 1)[0][0] > cell - 4 and scale > 0.28:
            scale -= 0.02
        while cv2.getTextSize(text, font, scale, 1)[0][0] > cell - 4 and len(text) > 3:
            text = text[:-3] + ".."
        tw = cv2.getTextSize(text, font, scale, 1)[0][0]
        cv2.putText(sheet, text, (ox + (cell - tw) // 2, oy + cell + 14), font, scale, (20, 20, 20), 1, cv2.LINE_AA)
    return sheet


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m realtime.procedural --sheet OUT.png [--category C] [--dir DIR]``."""
    ap = argparse.ArgumentParser(prog="python -m realtime.procedural", description=__doc__.split("\n")[0])
    ap.add_argument("--sheet", required=True, type=Path, help="output PNG of the contact sheet")
    ap.add_argument("--category", choices=CATEGORIES, help="only this category (default: all)")
    ap.add_argument("--dir", type=Path, help="show the images of this folder instead of the bundled accessories")
    ap.add_argument("--cols", type=int, default=6)
    ap.add_argument("--cell", type=int, default=160)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.dir is not None:
        accs = load_accessories_dir(args.dir, args.category)
    else:
        accs = [a for c in ([args.category] if args.category else CATEGORIES) for a in bundled_accessories(c)]
    if not accs:
        print("no accessories to show", file=sys.stderr)
        return 1
    args.sheet.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.sheet), cv2.cvtColor(contact_sheet(accs, args.cols, args.cell), cv2.COLOR_RGB2BGR)):
        print(f"could not write {args.sheet}", file=sys.stderr)
        return 1
    print(f"wrote {args.sheet} ({len(accs)} accessories)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
