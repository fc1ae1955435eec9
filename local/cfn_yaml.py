"""template.yaml as data, as SAM CLI and CloudFormation read it: short-form intrinsics in their long
form (`!Ref X` is {"Ref": "X"}, `!GetAtt A.B` is {"Fn::GetAtt": ["A", "B"]}, `!Sub s` is
{"Fn::Sub": "s"}), timestamps left as strings (`Version: 2012-10-17` stays a string).

The same result as samcli.yamlhelper.yaml_parse, without SAM CLI: aws-sam-cli pins a boto3 of its
own and so lives in a venv of its own (.venv-sam), not in the one the local stack and tools run in.
Unlike SAM CLI's, this loader changes no global PyYAML state.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

import yaml

# libyaml's parser where PyYAML was built with it (the wheels are): the same documents, the same
# constructors (they stay Python), several times faster. The local stack reads template.yaml at
# each start, so this is most of its start-up.
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _CfnLoader(_BaseLoader):
    pass


def _intrinsic(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> dict[str, Any]:
    tag = node.tag[1:]
    name = tag if tag in ("Ref", "Condition") else f"Fn::{tag}"
    value: Any
    if tag == "GetAtt" and isinstance(node, yaml.ScalarNode):
        value = str(node.value).split(".", 1)
    elif isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)
_CfnLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)


def yaml_parse(text: str) -> dict[str, Any]:
    """A CloudFormation/SAM template (YAML or JSON) as data: a copy of its own for each caller.

    Raises ValueError when the document is not a mapping, yaml.YAMLError when it is not YAML."""
    return copy.deepcopy(_parsed(text))


@functools.lru_cache(maxsize=8)  # the same template is read several times per process: parse it once
def _parsed(text: str) -> dict[str, Any]:
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 (a SafeLoader with CloudFormation's tags)
    if not isinstance(parsed, dict):
        raise ValueError("a template is a mapping at its top")
    return parsed
