"""Clinical code tables the generator draws from (LOINC, SNOMED CT, ICD-10-CM, RxNorm, CVX)."""

from __future__ import annotations

from typing import NamedTuple

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CVX = "http://hl7.org/fhir/sid/cvx"
UCUM = "http://unitsofmeasure.org"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


class Vital(NamedTuple):
    loinc: str
    display: str
    unit: str
    low: float
    high: float
    decimals: int


VITALS: tuple[Vital, ...] = (
    Vital("8867-4", "Heart rate", "/min", 58, 96, 0),
    Vital("9279-1", "Respiratory rate", "/min", 12, 20, 0),
    Vital("8310-5", "Body temperature", "Cel", 36.3, 37.6, 1),
    Vital("29463-7", "Body weight", "kg", 52, 110, 1),
    Vital("8302-2", "Body height", "cm", 152, 192, 1),
    Vital("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", 19, 34, 1),
    Vital("2708-6", "Oxygen saturation in Arterial blood", "%", 94, 100, 0),
)
BLOOD_PRESSURE = ("85354-9", "Blood pressure panel with all children optional")
SYSTOLIC = ("8480-6", "Systolic blood pressure")
DIASTOLIC = ("8462-4", "Diastolic blood pressure")


class Lab(NamedTuple):
    loinc: str
    display: str
    unit: str
    ref_low: float
    ref_high: float
    decimals: int


class Panel(NamedTuple):
    loinc: str
    display: str
    labs: tuple[Lab, ...]


LAB_PANELS: tuple[Panel, ...] = (
    Panel(
        "24323-8",
        "Comprehensive metabolic 2000 panel - Serum or Plasma",
        (
            Lab("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70, 99, 0),
            Lab("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.6, 1.2, 2),
            Lab("3094-0", "Urea nitrogen [Mass/volume] in Serum or Plasma", "mg/dL", 7, 20, 0),
            Lab("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 136, 145, 0),
            Lab("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.5, 5.1, 1),
            Lab("17861-6", "Calcium [Mass/volume] in Serum or Plasma", "mg/dL", 8.6, 10.3, 1),
        ),
    ),
    Panel(
        "58410-2",
        "CBC panel - Blood by Automated count",
        (
            Lab("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 4, 11, 1),
            Lab(
                "789-8",
                "Erythrocytes [#/volume] in Blood by Automated count",
                "10*6/uL",
                4.2,
                5.9,
                2,
            ),
            Lab("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 12, 17.5, 1),
            Lab(
                "4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count", "%", 36, 50, 1
            ),
            Lab(
                "777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", 150, 400, 0
            ),
        ),
    ),
    Panel(
        "57698-3",
        "Lipid panel with direct LDL - Serum or Plasma",
        (
            Lab("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 125, 200, 0),
            Lab("2571-8", "Triglyceride [Mass/volume] in Serum or Plasma", "mg/dL", 40, 150, 0),
            Lab(
                "2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma", "mg/dL", 40, 80, 0
            ),
            Lab(
                "18262-6",
                "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay",
                "mg/dL",
                50,
                130,
                0,
            ),
        ),
    ),
    Panel(
        "4548-4",
        "Hemoglobin A1c/Hemoglobin.total in Blood",
        (Lab("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 4.0, 5.6, 1),),
    ),
)


class Coded(NamedTuple):
    system: str
    code: str
    display: str


class Problem(NamedTuple):
    snomed: str
    icd10: str
    display: str


CHRONIC_PROBLEMS: tuple[Problem, ...] = (
    Problem("38341003", "I10", "Hypertensive disorder, systemic arterial"),
    Problem("44054006", "E11.9", "Diabetes mellitus type 2"),
    Problem("55822004", "E78.5", "Hyperlipidemia"),
    Problem("195967001", "J45.909", "Asthma"),
    Problem("35489007", "F32.9", "Depressive disorder"),
    Problem("40930008", "E03.9", "Hypothyroidism"),
    Problem("69896004", "M06.9", "Rheumatoid arthritis"),
    Problem("13645005", "J44.9", "Chronic obstructive lung disease"),
)
ACUTE_PROBLEMS: tuple[Problem, ...] = (
    Problem("444814009", "J06.9", "Viral sinusitis"),
    Problem("10509002", "J20.9", "Acute bronchitis"),
    Problem("68566005", "N39.0", "Urinary tract infectious disease"),
    Problem("43878008", "J02.0", "Streptococcal sore throat"),
    Problem("65966004", "S52.509A", "Fracture of forearm"),
    Problem("25064002", "R51.9", "Headache"),
)

MEDICATIONS: tuple[Coded, ...] = (
    Coded(RXNORM, "314076", "lisinopril 10 MG Oral Tablet"),
    Coded(RXNORM, "860975", "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet"),
    Coded(RXNORM, "617312", "atorvastatin 10 MG Oral Tablet"),
    Coded(RXNORM, "745679", "200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler"),
    Coded(RXNORM, "312938", "sertraline 50 MG Oral Tablet"),
    Coded(RXNORM, "966222", "levothyroxine sodium 0.075 MG Oral Tablet"),
    Coded(RXNORM, "308182", "amoxicillin 250 MG Oral Capsule"),
    Coded(RXNORM, "310965", "ibuprofen 200 MG Oral Tablet"),
    Coded(RXNORM, "198211", "simvastatin 40 MG Oral Tablet"),
)

ALLERGIES: tuple[Coded, ...] = (
    Coded(SNOMED, "91936005", "Allergy to penicillin"),
    Coded(SNOMED, "300913006", "Shellfish allergy"),
    Coded(SNOMED, "91935009", "Allergy to peanuts"),
    Coded(SNOMED, "419474003", "Allergy to mould"),
    Coded(SNOMED, "232347008", "Dander (animal) allergy"),
)

VACCINES: tuple[Coded, ...] = (
    Coded(CVX, "140", "Influenza, seasonal, injectable, preservative free"),
    Coded(CVX, "208", "SARS-COV-2 (COVID-19) vaccine, mRNA, spike protein, LNP, 30 mcg/0.3mL"),
    Coded(CVX, "115", "Tdap"),
    Coded(CVX, "133", "Pneumococcal conjugate PCV 13"),
    Coded(CVX, "43", "Hep B, adult"),
)

PROCEDURES: tuple[Coded, ...] = (
    Coded(SNOMED, "430193006", "Medication Reconciliation (procedure)"),
    Coded(SNOMED, "710824005", "Assessment of health and social care needs (procedure)"),
    Coded(SNOMED, "73761001", "Colonoscopy (procedure)"),
    Coded(SNOMED, "399208008", "Plain X-ray of chest (procedure)"),
    Coded(SNOMED, "76601001", "Intramuscular injection (procedure)"),
    Coded(SNOMED, "252160004", "Standard pregnancy test (procedure)"),
)

ENCOUNTER_TYPES: tuple[Coded, ...] = (
    Coded(SNOMED, "185349003", "Encounter for check up (procedure)"),
    Coded(SNOMED, "185345009", "Encounter for symptom (procedure)"),
    Coded(SNOMED, "390906007", "Follow-up encounter (procedure)"),
    Coded(SNOMED, "50849002", "Emergency room admission (procedure)"),
)

NOTE_TYPES: tuple[Coded, ...] = (
    Coded(LOINC, "11506-3", "Progress note"),
    Coded(LOINC, "34117-2", "History and physical note"),
    Coded(LOINC, "18842-5", "Discharge summary"),
    Coded(LOINC, "11488-4", "Consult note"),
)
IMAGING_REPORT = Coded(LOINC, "18748-4", "Diagnostic imaging study")
SCANNED_DOCUMENT = Coded(LOINC, "55107-7", "Addendum Document")

DEVICES: tuple[Coded, ...] = (
    Coded(SNOMED, "72506001", "Implantable defibrillator, device (physical object)"),
    Coded(SNOMED, "706180003", "Respiratory humidifier (physical object)"),
    Coded(SNOMED, "337414009", "Blood glucose meter (physical object)"),
)

SPECIALTIES: tuple[Coded, ...] = (
    Coded("http://nucc.org/provider-taxonomy", "207Q00000X", "Family Medicine"),
    Coded("http://nucc.org/provider-taxonomy", "207R00000X", "Internal Medicine"),
    Coded("http://nucc.org/provider-taxonomy", "207RC0000X", "Cardiovascular Disease"),
    Coded("http://nucc.org/provider-taxonomy", "2084N0400X", "Neurology"),
)

PAYERS: tuple[str, ...] = (
    "Blue Ridge Mutual Health",
    "Northstar Health Plans",
    "Medicare Part B",
    "Cascade Medicaid",
)

GIVEN_NAMES: tuple[str, ...] = (
    "Maya",
    "Daniel",
    "Priya",
    "Samuel",
    "Elena",
    "Marcus",
    "Grace",
    "Omar",
    "Lucia",
    "Kenji",
    "Hannah",
    "Tobias",
    "Amara",
    "Felix",
    "Noor",
    "Victor",
)
FAMILY_NAMES: tuple[str, ...] = (
    "Chen",
    "Okafor",
    "Schmidt",
    "Alvarez",
    "Patel",
    "Kowalski",
    "Haddad",
    "Brennan",
    "Ito",
    "Moreau",
    "Nguyen",
    "Lindgren",
)
STREETS: tuple[str, ...] = (
    "Maple Ave",
    "Harbor St",
    "Cedar Ln",
    "Summit Rd",
    "Oak Ct",
    "River Dr",
    "Elm St",
    "Pine Way",
)
