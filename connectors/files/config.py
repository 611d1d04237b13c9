"""The files source's config: one drop folder of CSV or JSON-lines files for one record type.

.. code-block:: yaml

    name: population-import          # the connector instance (offsets topic, transactional id)
    kind: files
    agency: population-registry      # who signs the records
    record_type: population.person-registered
    directory: /srv/drop/population  # relative paths are relative to the working directory
    format: csv                      # or jsonl
    pattern: "register-*.csv"        # default *.csv / *.jsonl
    done_dir: /srv/drop/population/done          # default <directory>/done
    rejected_dir: /srv/drop/population/rejected  # default <directory>/rejected
    batch: 500                       # lines read per poll
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from connectors.sdk.config import ConnectorConfig

__all__ = ["FilesSourceConfig", "Format"]

Format = Literal["csv", "jsonl"]


class FilesSourceConfig(ConnectorConfig):
    """A drop folder read in name order; finished files go to ``done_dir``, refused ones to ``rejected_dir``."""

    kind: Literal["files"] = "files"
    agency: str = Field(min_length=1, description="the agency whose key signs the records")
    record_type: str = Field(min_length=1, description="the one record type of every file in the folder")
    directory: Path = Field(description="the drop folder (it must exist)")
    format: Format = Field(description="`csv` (a header row of field names) or `jsonl` (one JSON object a line)")
    pattern: str = Field(default="", description="which file names are read (a glob); default *.csv or *.jsonl")
    done_dir: Path = Field(default=Path(), description="where finished files go; default <directory>/done")
    rejected_dir: Path = Field(default=Path(), description="where refused files go, each with a .reason.txt; "
                               "default <directory>/rejected")
    batch: int = Field(default=500, ge=1, le=100_000, description="lines read per poll")

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        """The defaults that depend on other settings (the pattern on the format, the folders on the directory)."""
        if not isinstance(data, dict):
            return data
        filled = dict(data)  # never change the caller's mapping
        if not filled.get("pattern") and filled.get("format") in ("csv", "jsonl"):
            filled["pattern"] = f"*.{filled['format']}"
        directory = filled.get("directory")
        if isinstance(directory, (str, Path)):
            filled.setdefault("done_dir", Path(directory) / "done")
            filled.setdefault("rejected_dir", Path(directory) / "rejected")
        return filled

    @field_validator("pattern")
    @classmethod
    def _plain_pattern(cls, value: str) -> str:
        if not value or "/" in value or "\\" in value:
            raise ValueError("a glob of file names in the folder (no directories), such as *.csv")
        return value

    @model_validator(mode="after")
    def _separate_folders(self) -> FilesSourceConfig:
        places = {"directory": self.directory, "done_dir": self.done_dir, "rejected_dir": self.rejected_dir}
        resolved = {name: path.resolve() for name, path in places.items()}
        if len(set(resolved.values())) != len(resolved):
            raise ValueError("directory, done_dir and rejected_dir must be three different folders")
        return self
