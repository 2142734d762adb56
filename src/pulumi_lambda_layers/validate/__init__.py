"""Validate a layer zip: layout, zip safety, ELF and wheel tags, sizes."""

from __future__ import annotations

from pulumi_lambda_layers.validate.binaries import check_binary
from pulumi_lambda_layers.validate.layer_zip import check_zip, inspect_zip
from pulumi_lambda_layers.validate.report import Finding, Report, Severity
from pulumi_lambda_layers.validate.zipsafety import check_paths, check_symlinks

__all__ = ["Finding", "Report", "Severity", "check_binary", "check_paths", "check_symlinks",
           "check_zip", "inspect_zip"]
