// The one YAML reader (riskgate/policy/yaml_reader.h) of policies, settings and the identity file:
// each error at its file:line:column, all of them collected, unknown keys with a suggestion,
// duplicate keys, and each value type.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <riskgate/policy/yaml_reader.h>

using riskgate::policy::Fields;
using riskgate::policy::YamlReader;

namespace {

std::vector<std::string> messages(const YamlReader &yaml)
{
  std::vector<std::string> out;
  for (const auto &d : yaml.diagnostics()) out.push_back(riskgate::policy::to_string(d));
  return out;
}

// The one document of `text`, read from "f.yaml".
YAML::Node one(YamlReader &yaml, const std::string &text)
{
  const auto documents = yaml.documents(text, "f.yaml");
  REQUIRE(documents.size() == 1);
  return documents.front();
}

}  // namespace

TEST_CASE("reader: unknown keys are refused with the nearest allowed one, or the list of them")
{
  YamlReader yaml;
  const auto fields =
      yaml.fields(one(yaml, "weight: 1\nwieght: 2\ncolour: red\n"), {"weight", "color", "mode"}, "the thing");
  REQUIRE(fields.has_value());
  CHECK(fields->size() == 1);
  CHECK(fields->get("weight")->Scalar() == "1");
  CHECK(messages(yaml) ==
        std::vector<std::string>{"f.yaml:2:1: unknown key 'wieght' in the thing (did you mean 'weight'?)",
                                 "f.yaml:3:1: unknown key 'colour' in the thing (did you mean 'color'?)"});

  YamlReader far;
  (void)far.fields(one(far, "zebra: 1\n"), {"weight", "mode"}, "the thing");
  CHECK(messages(far).at(0) == "f.yaml:1:1: unknown key 'zebra' in the thing (keys: weight, mode)");
}

TEST_CASE("reader: a repeated key is refused where it repeats; the first stays")
{
  YamlReader yaml;
  const auto fields = yaml.fields(one(yaml, "a: 1\nb: 2\na: 3\n"), {"a", "b"}, "the thing");
  REQUIRE(fields.has_value());
  CHECK(fields->get("a")->Scalar() == "1");
  CHECK(messages(yaml) == std::vector<std::string>{"f.yaml:3:1: duplicate key 'a' in the thing"});
}

TEST_CASE("reader: each value type, every wrong one reported at its position")
{
  YamlReader yaml;
  const auto doc = one(yaml, R"(name: [x]
count: 7.5
big: 300
ratio: high
on: yes
ttl: 600
short: 100ms
list: {a: 1}
strings: [a, {b: 1}, c]
map: [1]
good: {name: n, count: 3, ratio: 0.5, on: true, ttl: 1h30m, list: [x, y]}
)");
  const auto f = yaml.fields(
      doc, {"name", "count", "big", "ratio", "on", "ttl", "short", "list", "strings", "map", "good"}, "doc");
  REQUIRE(f.has_value());
  CHECK_FALSE(yaml.string(*f->get("name"), "name"));
  CHECK_FALSE(yaml.integer(*f->get("count"), "count", 1, 10));
  CHECK_FALSE(yaml.integer(*f->get("big"), "big", 1, 256));
  CHECK_FALSE(yaml.number(*f->get("ratio"), "ratio", 0, 1));
  CHECK_FALSE(yaml.boolean(*f->get("on"), "on"));
  CHECK_FALSE(yaml.duration(*f->get("ttl"), "ttl", 0));
  CHECK_FALSE(yaml.duration(*f->get("short"), "short", 1000));
  CHECK_FALSE(yaml.list(*f->get("list"), "list"));
  CHECK(yaml.strings(*f->get("strings"), "strings") == std::vector<std::string>{"a", "c"});
  CHECK_FALSE(yaml.fields(*f->get("map"), {"a"}, "map"));
  CHECK(messages(yaml) ==
        std::vector<std::string>{
            "f.yaml:1:7: name must be a string",
            "f.yaml:2:8: count must be a whole number from 1 to 10, not '7.5'",
            "f.yaml:3:6: big must be a whole number from 1 to 256, not '300'",
            "f.yaml:4:8: ratio must be a number from 0 to 1, not 'high'",
            "f.yaml:5:5: on must be true or false",
            "f.yaml:6:6: ttl: '600' is not a duration: 600 has no unit; write 600s, 600m, 600h or 600d",
            "f.yaml:7:8: short must be at least 1s",
            "f.yaml:8:7: list must be a list",
            "f.yaml:9:14: each entry of strings must be a string",
            "f.yaml:10:6: map must be a mapping",
        });

  YamlReader fine;
  const auto good = fine.fields(*f->get("good"), {"name", "count", "ratio", "on", "ttl", "list"}, "good");
  REQUIRE(good.has_value());
  CHECK(*fine.string(*good->get("name"), "name") == "n");
  CHECK(*fine.integer(*good->get("count"), "count", 1, 10) == 3);
  CHECK(*fine.number(*good->get("ratio"), "ratio", 0, 1) == 0.5);
  CHECK(*fine.boolean(*good->get("on"), "on"));
  CHECK(*fine.duration(*good->get("ttl"), "ttl", 0) == 5'400'000);
  CHECK(fine.strings(*good->get("list"), "list") == std::vector<std::string>{"x", "y"});
  CHECK(fine.ok());
}

TEST_CASE("reader: syntax errors and unreadable files have a location too")
{
  YamlReader yaml;
  CHECK(yaml.documents("a: [1, 2\n", "f.yaml").empty());
  REQUIRE(messages(yaml).size() == 1);
  CHECK(messages(yaml)[0].rfind("f.yaml:", 0) == 0);
  CHECK(messages(yaml)[0].find("YAML syntax") != std::string::npos);

  YamlReader missing;
  CHECK_FALSE(missing.read_text("/nonexistent/rgt.yaml"));
  CHECK(messages(missing).at(0) == "/nonexistent/rgt.yaml: cannot read: No such file or directory");

  YamlReader several;
  CHECK(several.documents("a: 1\n---\n---\nb: 2\n", "f.yaml").size() == 2);  // empty documents skipped
}
