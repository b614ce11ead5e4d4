"""How big a persona's record is, per size class, as data."""

from __future__ import annotations

from dataclasses import dataclass

from ehiconnect.sandbox.config import SizeClass


@dataclass(frozen=True)
class SizeProfile:
    encounters: int
    years: int
    pdf_count: int
    pdf_bytes: tuple[int, int]
    """Range of a PDF's embedded payload, in bytes."""
    image_count: int
    note_bytes: tuple[int, int]
    dicom_bytes: tuple[int, ...] = ()
    """One imaging attachment per entry, of exactly this many payload bytes."""


PROFILES: dict[SizeClass, SizeProfile] = {
    "tiny": SizeProfile(
        encounters=4,
        years=2,
        pdf_count=1,
        pdf_bytes=(200_000, 400_000),
        image_count=1,
        note_bytes=(1_500, 4_000),
    ),
    "small": SizeProfile(
        encounters=33,
        years=5,
        pdf_count=9,
        pdf_bytes=(2_500_000, 3_800_000),
        image_count=4,
        note_bytes=(2_000, 8_000),
    ),
    "medium": SizeProfile(
        encounters=100,
        years=8,
        pdf_count=20,
        pdf_bytes=(3_000_000, 6_000_000),
        image_count=10,
        note_bytes=(2_000, 10_000),
    ),
    "huge": SizeProfile(
        encounters=370,
        years=15,
        pdf_count=30,
        pdf_bytes=(1_000_000, 4_000_000),
        image_count=12,
        note_bytes=(2_000, 12_000),
        dicom_bytes=(3_000_000_000,),
    ),
}
