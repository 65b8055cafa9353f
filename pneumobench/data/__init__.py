"""Data handling: SIIM-ACR run-length masks, DICOM ingest and prepared datasets."""
