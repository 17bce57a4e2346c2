"""`-l` is checked as the API server parses a label selector (k8s.io/apimachinery's
labels.Parse, which kubectl uses too): what it takes passes unchanged, what it refuses is a
usage error before any request."""

from __future__ import annotations

import pytest

from wukong.console.selector import BadSelector, check_selector


@pytest.mark.parametrize(
    "selector",
    [
        pytest.param("tier=web", id="equals"),
        pytest.param("tier==web", id="double-equals"),
        pytest.param("tier=web,env!=prod", id="two-terms"),
        pytest.param(" tier = web , env != prod ", id="spaces"),
        pytest.param("tier", id="exists"),
        pytest.param("!tier", id="does-not-exist"),
        pytest.param("tier,!canary", id="exists-and-not"),
        pytest.param("tier in (web,db)", id="in"),
        pytest.param("tier notin(web)", id="notin-no-space"),
        pytest.param("tier in ()", id="in-empty-value"),
        pytest.param("tier in (web,)", id="in-trailing-comma"),
        pytest.param("tier=", id="empty-value"),
        pytest.param("vm.novasphere.dev/wukong=web-1", id="prefixed-key"),
        pytest.param("Tier_1.x=V-2", id="mixed-case"),
        pytest.param("replicas>1,replicas<10", id="gt-lt"),
        pytest.param("in=notin", id="keywords-as-key-and-value"),
    ],
)
def test_what_the_api_server_takes_passes(selector: str) -> None:
    check_selector(selector)


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        pytest.param("bad label!!", "found 'label', expected: in, notin, =", id="audit"),
        pytest.param("tier=web,", "found the end, expected: identifier after ','", id="comma"),
        pytest.param(",tier", "found ',', expected: !, identifier", id="leading-comma"),
        pytest.param("a,,b", "found ',', expected: identifier after ','", id="double-comma"),
        pytest.param("tier web", "found 'web', expected: in, notin", id="no-operator"),
        pytest.param("!tier=web", "found '=', expected: ',' or the end", id="not-with-value"),
        pytest.param("a=b=c", "found '=', expected: ',' or the end", id="two-equals"),
        pytest.param("tier in web", "found 'web', expected: '('", id="in-without-parens"),
        pytest.param("tier in", "found the end, expected: '('", id="in-alone"),
        pytest.param("tier in (web", "found the end, expected: ',', ')'", id="unclosed"),
        pytest.param("tier in (web db)", "found 'db', expected: ',', ')'", id="no-comma"),
        pytest.param("tier=(web)", "found '(', expected: identifier", id="parens-after-equals"),
        pytest.param("!", "found the end, expected: identifier", id="bang-alone"),
        pytest.param("n>x", "for > and <, the value must be an integer", id="gt-word"),
        pytest.param("-a=b", "'-a' is not a label key", id="key-start"),
        pytest.param("a/b/c=d", "'a/b/c' is not a label key", id="two-slashes"),
        pytest.param("/a=b", "'/a' is not a label key", id="empty-prefix"),
        pytest.param("k" * 64, "is not a label key", id="key-too-long"),
        pytest.param("p" * 254 + "/a", "is not a label key", id="prefix-too-long"),
        pytest.param("a=" + "v" * 64, "(of a) is not a label value", id="value-too-long"),
        pytest.param("a in (x,_y)", "'_y' (of a) is not a label value", id="value-in-set"),
    ],
)
def test_what_the_api_server_refuses_is_said_before_any_request(
    selector: str, message: str
) -> None:
    with pytest.raises(BadSelector) as refused:
        check_selector(selector)
    assert message in str(refused.value)
