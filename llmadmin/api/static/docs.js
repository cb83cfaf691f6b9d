// The API docs page: reads openapi.json and lists every operation with its parameters,
// body and answers. Text is inserted with textContent only (nothing from the document is
// parsed as HTML). Self-written and served from this app: no CDN, runs under the app's CSP.
(function () {
  "use strict";
  var root = document.getElementById("docs");
  // The page's words, in the reader's language (the template puts them on #docs).
  var say = function (name) { return root.getAttribute("data-" + name) || name; };

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }

  // Markdown's inline code (`text`) as <code>; everything else stays plain text.
  function prose(tag, text) {
    var node = el(tag);
    String(text || "").split("`").forEach(function (part, i) {
      if (!part) return;
      node.appendChild(i % 2 ? el("code", part) : document.createTextNode(part));
    });
    return node;
  }

  function schemaText(schema) {
    return JSON.stringify(schema, null, 2);
  }

  function renderOperation(spec, path, method, op) {
    var box = el("section", null, "op");
    var title = el("h3");
    title.appendChild(el("span", method, "method " + method));
    title.appendChild(el("code", "/api/v1" + path));
    box.appendChild(title);
    box.appendChild(prose("p", op.summary));
    if (op.parameters && op.parameters.length) {
      var table = el("table");
      var head = el("tr");
      ["parameter", "in", "type", "meaning"].forEach(function (h) { head.appendChild(el("th", say(h))); });
      table.appendChild(head);
      op.parameters.forEach(function (p) {
        var row = el("tr");
        row.appendChild(el("td", p.name + (p.required ? " *" : "")));
        row.appendChild(el("td", p.in));
        row.appendChild(el("td", (p.schema && p.schema.type) || ""));
        row.appendChild(prose("td", p.description));
        table.appendChild(row);
      });
      box.appendChild(table);
    }
    if (op.requestBody) {
      var body = el("details");
      body.appendChild(el("summary", say("body")));
      body.appendChild(el("pre", schemaText(op.requestBody.content["application/json"].schema)));
      box.appendChild(body);
    }
    var answers = el("details");
    answers.appendChild(el("summary", say("answers") + " " + Object.keys(op.responses).join(", ")));
    Object.keys(op.responses).forEach(function (status) {
      answers.appendChild(prose("p", status + " — " + op.responses[status].description));
    });
    box.appendChild(answers);
    return box;
  }

  function render(spec) {
    root.textContent = "";
    root.appendChild(prose("p", spec.info.description));
    Object.keys(spec.paths).forEach(function (path) {
      var item = spec.paths[path];
      Object.keys(item).forEach(function (method) {
        root.appendChild(renderOperation(spec, path, method, item[method]));
      });
    });
    var schemas = el("details");
    schemas.appendChild(el("summary", say("schemas")));
    Object.keys(spec.components.schemas).forEach(function (name) {
      schemas.appendChild(el("h4", name));
      schemas.appendChild(el("pre", schemaText(spec.components.schemas[name])));
    });
    root.appendChild(el("h2", say("shapes")));
    root.appendChild(schemas);
  }

  fetch(root.getAttribute("data-spec"), { credentials: "omit" })
    .then(function (r) { return r.json(); })
    .then(render)
    .catch(function (e) { root.textContent = say("failed") + " " + e; });
})();
