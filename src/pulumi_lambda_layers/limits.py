"""Lambda's quotas and the name and ARN patterns it accepts, in one place."""

from __future__ import annotations

import re

# Quotas (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html). Lambda enforces
# them, so a copy that drifts from these would pass a layer Lambda then refuses at apply time.
DIRECT_UPLOAD_LIMIT = 52_428_800  # bytes (50 MiB): a zip sent in the API call; bigger goes via S3
UNZIPPED_LIMIT = 262_144_000  # bytes (250 MiB): function code plus all its layers, unzipped
MAX_LAYERS = 5  # layers per function
DESCRIPTION_LIMIT = 256  # characters of a layer version description
LAYER_NAME_LIMIT = 140  # characters of a layer name

_NAME_CHARS = r"[A-Za-z0-9_-]"
LAYER_NAME = re.compile(rf"{_NAME_CHARS}{{1,{LAYER_NAME_LIMIT}}}")
# Groups are named so callers read what they take; `layer` opens first, so group(1) is the layer ARN.
LAYER_ARN = re.compile(
    rf"arn:aws[a-z-]*:lambda:(?P<region>[a-z0-9-]+):\d{{12}}:layer:(?P<name>{_NAME_CHARS}+)")
LAYER_VERSION_ARN = re.compile(rf"(?P<layer>{LAYER_ARN.pattern}):(?P<version>\d+)")
ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}")
