"""ehiconnect: patient-consented retrieval of electronic health information over SMART on FHIR."""

__version__ = "0.1.0"
