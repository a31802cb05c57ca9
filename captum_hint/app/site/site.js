// captum_hint explorer: renders a page from its data file. Data files are scripts calling
// captumHintData(...) because browsers refuse fetch() from file:// (the site opens from disk).
(function () {
  "use strict";
  const kind = document.body.dataset.kind;
  const params = new URLSearchParams(window.location.search);
  const main = document.getElementById("main");
  let site = null;

  // ------------------------------------------------------------------ helpers
  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes || {})) {
      if (value !== null && value !== undefined && value !== false) node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat(Infinity)) {
      if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }
  const link = (href, text, attributes) => el("a", Object.assign({ href: href }, attributes || {}), text);
  const conceptHref = (id) => "concept.html?c=" + encodeURIComponent(id);
  const neuronHref = (n) => "neuron.html?n=" + n;
  const imageHref = (i) => "image.html?i=" + i;
  const format = (v, digits) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits === undefined ? 3 : digits));

  function fail(message) {
    main.replaceChildren(el("p", { class: "error", role: "alert" }, message));
    console.error("captum_hint explorer: " + message);
    document.body.dataset.ready = "error";
  }
  function load(source, what) {
    const script = el("script", { src: source });
    script.onerror = () => fail(what + " could not be loaded (" + source + " is missing).");
    document.head.append(script);
  }
  function concept(id) { return site.concepts.find((c) => c.id === id); }
  function conceptLink(id) { const c = concept(id); return link(conceptHref(id), c ? c.label : id); }
  function neuronLink(n) { return link(neuronHref(n), "#" + n, { "aria-label": "neuron " + n }); }
  function table(headers, rows) {
    return el("div", { class: "tablewrap" }, el("table", null,
      el("thead", null, el("tr", null, headers.map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", null, rows.map((row) => el("tr", null, row.map((cell) =>
        cell && cell.number !== undefined ? el("td", { class: "number" }, cell.number) : el("td", null, cell)))))));
  }
  // A signed value as number, bar and colour: readable without the colour.
  function valueBar(value, largest) {
    const share = largest > 0 ? Math.min(1, Math.abs(value) / largest) : 0;
    return el("span", { class: "value" }, el("span", { class: "bar" + (value < 0 ? " negative" : ""),
      style: "width:" + Math.round(60 * share) + "px", "aria-hidden": "true" }), format(value, 4));
  }
  // The background of a tree node: stronger for a larger |value| (blue positive, orange negative).
  function tint(value, largest) {
    const share = largest > 0 ? Math.min(1, Math.abs(value || 0) / largest) : 0;
    return "background:" + (value < 0 ? "rgba(192,86,27," : "rgba(31,111,178,") + (0.05 + 0.3 * share).toFixed(3) + ")";
  }
  function ancestors(id) {
    const seen = new Set(), frontier = [...concept(id).parents];
    while (frontier.length) { const p = frontier.pop(); if (!seen.has(p)) { seen.add(p); frontier.push(...concept(p).parents); } }
    return seen;
  }

  // A map (rows of values in [0, 1]) drawn smoothly over its image; the alpha follows the value.
  function colour(v) {
    const stops = [[0, [0, 0, 120]], [0.35, [120, 0, 160]], [0.7, [240, 80, 40]], [1, [255, 240, 80]]];
    for (let k = 1; k < stops.length; k++) {
      if (v <= stops[k][0]) {
        const [a, ca] = stops[k - 1], [b, cb] = stops[k], t = (v - a) / (b - a);
        return ca.map((x, j) => Math.round(x + t * (cb[j] - x)));
      }
    }
    return stops[stops.length - 1][1];
  }
  function drawMap(canvas, map) {
    const h = map.length, w = map[0].length, small = document.createElement("canvas");
    small.width = w; small.height = h;
    const context = small.getContext("2d"), pixels = context.createImageData(w, h);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      const v = Math.max(0, Math.min(1, map[y][x])), [r, g, b] = colour(v), k = 4 * (y * w + x);
      pixels.data[k] = r; pixels.data[k + 1] = g; pixels.data[k + 2] = b; pixels.data[k + 3] = Math.round(30 + 180 * v);
    }
    context.putImageData(pixels, 0, 0);
    const target = canvas.getContext("2d");
    target.imageSmoothingEnabled = true;
    target.drawImage(small, 0, 0, canvas.width, canvas.height);
  }
  function mapFigure(image, map, caption, alt, peakPixel) {
    const canvas = el("canvas", { width: 224, height: 224, "aria-hidden": "true" });
    const stack = el("div", { class: "stack" }, el("img", { src: "img/images/" + image + ".jpg", alt: alt }), canvas);
    if (map) drawMap(canvas, map);
    if (peakPixel) {
      const img = stack.querySelector("img");
      img.addEventListener("load", () => {
        stack.append(el("span", { class: "marker", title: "peak", style: "left:" + (100 * (peakPixel[1] + 0.5) /
          img.naturalWidth) + "%;top:" + (100 * (peakPixel[0] + 0.5) / img.naturalHeight) + "%" }));
      });
    }
    return el("figure", null, link(imageHref(image), stack, { "aria-label": alt }), el("figcaption", null, caption));
  }

  // ------------------------------------------------------------------ search
  function searchEntries() {
    const entries = site.concepts.map((c) => ({ text: c.label + " " + c.name, shown: c.label, kind: "concept",
                                                href: conceptHref(c.id) }));
    for (const [label, id] of site.leaves) {
      entries.push({ text: label, shown: label, kind: "class, under " + concept(id).label, href: conceptHref(id) });
    }
    site.image_names.forEach((name, i) => entries.push({ text: name, shown: name, kind: "image", href: imageHref(i) }));
    return entries;
  }
  function results(query) {
    const q = query.trim().toLowerCase();
    if (!q) return [];
    const found = [];
    const number = q.match(/^(?:#|neuron\s*)?(\d+)$/);
    if (number && Number(number[1]) < site.neurons) {
      found.push({ shown: "neuron #" + Number(number[1]), kind: "neuron of " + site.layer, href: neuronHref(Number(number[1])) });
    }
    for (const entry of searchEntries()) {
      if (entry.text.toLowerCase().includes(q)) found.push(entry);
      if (found.length >= 20) break;
    }
    return found;
  }
  function setUpSearch() {
    const input = document.getElementById("search"), list = document.getElementById("results");
    input.addEventListener("input", () => {
      list.replaceChildren(...results(input.value).map((r) =>
        el("li", null, link(r.href, r.shown), el("span", { class: "kind" }, r.kind))));
    });
    input.form.addEventListener("submit", (event) => {
      event.preventDefault();
      const first = results(input.value)[0];
      if (first) window.location.href = first.href;
      else list.replaceChildren(el("li", null, el("span", { class: "kind" }, "nothing matches " + input.value)));
    });
  }

  // ------------------------------------------------------------------ pages
  function conceptTree(roots, item) {
    return el("ul", { class: "tree" }, roots.map((id) => el("li", null, item(id),
      concept(id).children.length ? conceptTree(concept(id).children, item) : null)));
  }
  const roots = () => site.concepts.filter((c) => c.parents.length === 0).map((c) => c.id);

  const THUMBNAILS = 48;  // the index shows this many images as pictures, the rest as links
  function recognizedMark(i) {
    const r = site.recognized[i];
    return r === null ? "" : r ? " (recognized)" : " (not recognized)";
  }
  function recognizedCount() {
    const known = site.recognized.filter((r) => r !== null);
    return known.length ? known.filter((r) => r).length + " of " + known.length + " images recognized: the model's " +
      "top class is one of the objects in it." : "The images' objects were not given.";
  }
  function renderIndex() {
    document.title = site.title;
    const multimodal = Object.entries(site.multimodal);
    main.replaceChildren(
      el("h1", null, site.title),
      el("p", null, "Model ", el("b", null, site.model), ", layer ", el("code", null, site.layer), " (" + site.neurons +
        " neurons), " + site.images + " images. Systems: " + site.systems.join(", ") + ". Each concept lists its top " +
        site.top_n + " neurons per system; its maps use the top " + Math.round(100 * site.top_fraction) + " % by Shapley value."),
      ...site.notes.map((note) => el("p", { class: "note" }, note)),
      el("h2", null, "Concepts"), conceptTree(roots(), conceptLink),
      el("h2", null, "Neurons in the top " + site.top_n + " of several concepts (HINT)"),
      multimodal.length ? el("ul", null, multimodal.map(([n, ids]) => el("li", null, neuronLink(n), ": ",
        ids.map((id, k) => [k ? ", " : "", conceptLink(id)])))) : el("p", { class: "note" }, "None."),
      el("h2", null, "Images"),
      el("p", { class: "note" }, recognizedCount()),
      el("div", { class: "figures" }, site.image_names.slice(0, THUMBNAILS).map((name, i) =>
        mapFigure(i, null, name + recognizedMark(i), name))),
      site.images > THUMBNAILS ? el("ul", { class: "neuron-list" }, site.image_names.slice(THUMBNAILS).map((name, k) =>
        el("li", null, link(imageHref(THUMBNAILS + k), name), recognizedMark(THUMBNAILS + k)))) : null,
      el("h2", null, "All neurons of " + site.layer),
      el("ul", { class: "neuron-list" }, Array.from({ length: site.neurons }, (_, n) => el("li", null, neuronLink(n)))));
  }

  function renderConcept(page) {
    document.title = page.label + " · captum_hint explorer";
    const me = concept(page.id);
    const systems = Object.keys(page.top).filter((s) => page.top[s]);
    const absent = Object.keys(page.top).filter((s) => !page.top[s]);
    const depth = Math.max(...systems.map((s) => (page.top[s] || []).length));
    const rows = Array.from({ length: depth }, (_, r) => [{ number: String(r + 1) },
      ...systems.map((s) => page.top[s] && page.top[s][r] ? el("span", null, neuronLink(page.top[s][r].neuron), " ",
        el("span", { class: "muted" }, format(page.top[s][r].value, 4))) : "–")]);
    const measure = { HINT: "Shapley value Φ", SeVec: "semantic-vector loading", AfI: "occluder importance" };
    main.replaceChildren(
      el("p", { class: "muted" }, "Concept", page.wnid ? " · WordNet " + page.wnid : "", " · ", page.name),
      el("h1", null, page.label),
      el("p", null, "Broader: ", me.parents.length ? me.parents.map((p, k) => [k ? ", " : "", conceptLink(p)]) : "none (a top concept)",
        ". Narrower: ", me.children.length ? me.children.map((c, k) => [k ? ", " : "", conceptLink(c)]) : "none", "."),
      el("details", null, el("summary", null, "Covers " + page.leaves.length + " classes of the model"),
        el("p", null, page.leaves.join("; "))),
      el("h2", null, "Concept classifier on held-out images"),
      table(["score", "value", "95 % interval (bootstrap over held-out images)"],
        Object.entries(page.scores).map(([name, v]) => [name === "f1" ? "F1" : "ROC-AUC", { number: format(v[0]) },
          "[" + format(v[1]) + ", " + format(v[2]) + "]"])),
      el("h2", null, "Top neurons, by system"),
      el("p", { class: "note" }, systems.map((s) => s + ": " + measure[s]).join("; ") + "." +
        (absent.length ? " Not fitted for this concept: " + absent.join(", ") + "." : "")),
      table(["rank", ...systems], rows),
      page.overlap.length ? el("ul", null, page.overlap.map((o) => el("li", null, o.systems.join(" ∩ ") + ": " +
        o.shared.length + " shared", o.shared.length ? [" (", o.shared.map((n, k) => [k ? ", " : "", neuronLink(n)]), ")"] : "",
        ", Jaccard " + format(o.jaccard, 2)))) : el("p", { class: "note" }, "One system only: no overlap to show."),
      el("h2", null, "Where it is found: the images where its map peaks highest"),
      el("div", { class: "figures" }, page.examples.map((e) => mapFigure(e.image, e.map,
        site.image_names[e.image] + ": peak " + format(e.peak, 2) + ", mean " + format(e.mean, 2) +
          (e.contains ? "; contains " : "; does not contain ") + page.label,
        page.label + " map on " + site.image_names[e.image]))));
  }

  function renderNeuron(page) {
    document.title = "Neuron " + page.neuron + " · captum_hint explorer";
    const largest = Math.max(...page.phi.map((v) => Math.abs(v || 0)));
    const index = Object.fromEntries(site.concepts.map((c, k) => [c.id, k]));
    const hintClaims = page.claims.HINT || [];
    const related = (a, b) => ancestors(a).has(b) || ancestors(b).has(a);
    let verdict = "Not in the top " + site.top_n + " of any concept (HINT).";
    if (hintClaims.length === 1) verdict = "Specific: in the top " + site.top_n + " of one concept.";
    if (hintClaims.length > 1) {
      const split = hintClaims.some((a) => hintClaims.some((b) => a !== b && !related(a, b)));
      verdict = split ? "Multimodal: in the top " + site.top_n + " of concepts on different branches of the hierarchy."
                      : "Collaborative along one branch: in the top " + site.top_n + " of a concept and its broader or narrower ones.";
    }
    main.replaceChildren(
      el("p", { class: "muted" }, "Neuron of ", el("code", null, site.layer)),
      el("h1", null, "Neuron #" + page.neuron),
      el("p", null, el("span", { class: "tag" }, verdict)),
      el("h2", null, "Shapley value Φ for each concept, along the hierarchy"),
      el("p", { class: "note" }, "Bar length, shade and the number give Φ (orange, hatched: negative); rank among the layer's " +
        site.neurons + " neurons for that concept."),
      conceptTree(roots(), (id) => el("span", { class: "swatch", style: tint(page.phi[index[id]], largest) },
        conceptLink(id), " ", valueBar(page.phi[index[id]], largest),
        el("span", { class: "muted" }, " rank " + page.rank[index[id]] + " / " + site.neurons))),
      el("h2", null, "Concepts that claim it, by system"),
      table(["system", "concepts where it is among the top " + site.top_n], Object.entries(page.claims).map(([s, ids]) =>
        [s, ids.length ? el("span", null, ids.map((id, k) => [k ? ", " : "", conceptLink(id)])) : "none"])),
      el("h2", null, "Reference patches"),
      page.patches ? el("div", { class: "patches" }, el("img", { src: "img/patches/" + page.neuron + ".jpg",
        alt: "the " + page.patch_values.length + " image crops where neuron " + page.neuron + " peaks highest" }),
        el("p", { class: "note" }, "Peak activations, left to right: " + page.patch_values.map((v) => format(v, 2)).join(", ") +
          ". Each crop is the layer's receptive field around the peak.")) :
        el("p", { class: "note" }, "Not stored: reference patches are kept only for neurons that some page lists."),
      el("h2", null, "Images whose gAP tree passes through it"),
      page.images.length ? el("ul", null, page.images.map((e) => el("li", null, link(imageHref(e.image),
        site.image_names[e.image]), ": share " + format(100 * e.share, 1) + " % of its parent's evidence"))) :
        el("p", { class: "note" }, "None of the site's trees."));
  }

  function treeItem(node) {
    const name = node.neuron ? neuronLink(node.channel) : "#" + node.channel;
    return el("li", null, el("code", null, node.layer), " ", name, " ", el("span", { class: "value" },
      el("span", { class: "bar", style: "width:" + Math.round(60 * Math.max(0, Math.min(1, node.share))) + "px",
        "aria-hidden": "true" }), format(100 * node.share, 1) + " %"),
      el("span", { class: "muted" }, " of its parent's evidence, α " + format(node.contribution, 4)),
      node.concepts.length ? [" · HINT: ", node.concepts.map(([id, score], k) => [k ? ", " : "", conceptLink(id),
        " (Φ " + format(score, 3) + ")"])] : "",
      node.children.length ? el("ul", null, node.children.map(treeItem)) : null);
  }
  function renderImage(page) {
    document.title = page.name + " · captum_hint explorer";
    const levels = [];
    (function walk(node, depth) {
      if (depth > 0) (levels[depth - 1] = levels[depth - 1] || []).push(node);
      node.children.forEach((child) => walk(child, depth + 1));
    })(page.tree || { children: [] }, 0);
    main.replaceChildren(
      el("p", { class: "muted" }, "Image " + page.image),
      el("h1", null, page.name),
      el("p", null, "Objects: " + (page.labels.length ? page.labels.join("; ") : "not given") + ". Predicted: " +
        page.predicted + " (p = " + format(page.probability, 3) + ")" + (page.recognized === null ? "." :
        page.recognized ? ": one of the objects (recognized)." : ": none of the objects (not recognized).")),
      el("h2", null, "Each concept's map (top " + Math.round(100 * site.top_fraction) + " % neurons)"),
      el("div", { class: "figures" }, Object.entries(page.maps).map(([id, map]) => mapFigure(page.image, map,
        [conceptLink(id), ": peak " + format(Math.max(...map.flat()), 2)], concept(id).label + " map"))),
      el("h2", null, "Decision tree (gAP)"),
      page.tree ? el("ul", { class: "tree" }, el("li", null, "Decision: " + page.decision + ", score " +
        format(page.tree.contribution, 4),
        el("ul", null, page.tree.children.map(treeItem)))) : el("p", { class: "note" }, "No gAP tree was computed."),
      page.tree ? el("div", { class: "pyramid" }, el("h2", null, "Evidence pyramid"),
        el("p", { class: "note" }, "Each node's activation map at its layer, its peak marked; top row nearest the decision."),
        levels.map((nodes, depth) => [el("h3", null, "Level " + (depth + 1) + ": " + nodes[0].layer),
          el("div", { class: "figures" }, nodes.map((node) => mapFigure(page.image, node.map, "#" + node.channel +
            ", share " + format(100 * node.share, 1) + " %", node.layer + " channel " + node.channel + " on " + page.name,
            node.peak_pixel)))])) : null);
  }

  // ------------------------------------------------------------------ start
  const pages = {
    concept: () => {
      const id = params.get("c");
      if (!id || !concept(id)) return fail("No concept " + JSON.stringify(id) + " on this site.");
      load("data/concepts/" + encodeURIComponent(id) + ".js", "The concept's data");
    },
    neuron: () => {
      const n = Number(params.get("n"));
      if (!Number.isInteger(n) || n < 0 || n >= site.neurons || params.get("n") === null) return fail("No neuron " + params.get("n") + " on this site.");
      load("data/neurons/" + n + ".js", "The neuron's data");
    },
    image: () => {
      const i = Number(params.get("i"));
      if (!Number.isInteger(i) || i < 0 || i >= site.images || params.get("i") === null) return fail("No image " + params.get("i") + " on this site.");
      load("data/images/" + i + ".js", "The image's data");
    },
  };
  const renderers = { concept: renderConcept, neuron: renderNeuron, image: renderImage };
  window.captumHintData = function (data) {
    if (site === null) {
      site = data;
      setUpSearch();
      if (kind === "index") { renderIndex(); document.body.dataset.ready = "1"; } else { pages[kind](); }
      return;
    }
    try {
      renderers[kind](data);
      document.body.dataset.ready = "1";
    } catch (error) {
      fail("This page could not be drawn: " + error.message);
    }
  };
  // A data file that does not run (e.g. corrupted) must not leave the page silently half drawn.
  window.addEventListener("error", (event) => fail("A script failed: " + event.message));
  load("data/site.js", "The site's index");
})();
