// The draw-a-digit page: pointer strokes on a canvas, sent as a PNG to POST /predict while drawing.
// One request in flight at most; strokes made meanwhile are sent once it returns (the newest only).
// The answer says how probable the digit is (calibrated), whether the model is sure of it or the
// drawing looks like no digit at all, and, when asked, which pixels made it (integrated gradients).
// A server that wants an API key (401) gets one from the user, kept for this tab only. Where the server
// keeps corrections (GET /feedback), a wrong answer can be corrected: the drawing goes to POST /feedback
// with the right digit, for the next training run.

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const ui = {
  digit: document.getElementById("digit"),
  confidence: document.getElementById("confidence"),
  doubt: document.getElementById("doubt"),
  error: document.getElementById("error"),
  heatmap: document.getElementById("heatmap"),
  explain: document.getElementById("explain"),
  bars: document.getElementById("bars"),
  seen: document.getElementById("seen"),
  servedBy: document.getElementById("served-by"),
  model: document.getElementById("model"),
  file: document.getElementById("file"),
  keyForm: document.getElementById("key-form"),
  correct: document.getElementById("correct"),
  thanks: document.getElementById("thanks"),
  key: document.getElementById("api-key"),
};
const KEY_STORE = "mnist-api-key";
const PEN_WIDTH = 18; // in canvas pixels, of 280: about MNIST's stroke once scaled to 20x20
const MIN_INTERVAL_MS = 120;

const strokes = []; // each: {points: [[x, y, width], ...]}
let current = null;
let inFlight = false;
let pending = null; // the newest drawing not yet sent
let timer = null;
let lastSent = 0;
let generation = 0; // bumped by clear, undo and uploads: answers and encodings for older drawings are dropped
let lastBody = null; // what was sent last, sent again once a key is given
let feedbackOn = false; // whether the server keeps corrections

for (let d = 0; d < 10; d++) {
  const row = document.createElement("li");
  row.innerHTML = `<span>${d}</span><span class="bar"></span><span class="value">0%</span>`;
  ui.bars.append(row);
}

function point(event) {
  const box = pad.getBoundingClientRect();
  const scale = pad.width / box.width;
  const pressure = event.pointerType === "pen" && event.pressure > 0 ? 0.5 + event.pressure : 1;
  return [(event.clientX - box.left) * scale, (event.clientY - box.top) * scale, PEN_WIDTH * pressure];
}

function drawStroke(stroke) {
  ctx.strokeStyle = "#111";
  ctx.fillStyle = "#111";
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  const [first, ...rest] = stroke.points;
  // A dot where the stroke starts: a tap, or a stroke that has not moved yet (a zero-length line draws nothing).
  ctx.beginPath();
  ctx.arc(first[0], first[1], first[2] / 2, 0, 2 * Math.PI);
  ctx.fill();
  let previous = first;
  for (const p of rest) {
    ctx.lineWidth = p[2];
    ctx.beginPath();
    ctx.moveTo(previous[0], previous[1]);
    ctx.lineTo(p[0], p[1]);
    ctx.stroke();
    previous = p;
  }
}

function redraw() {
  ctx.clearRect(0, 0, pad.width, pad.height);
  strokes.forEach(drawStroke);
}

pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  current = { points: [point(event)] };
  strokes.push(current);
  drawStroke(current);
});
pad.addEventListener("pointermove", (event) => {
  if (!current) return;
  for (const e of event.getCoalescedEvents ? event.getCoalescedEvents() : [event]) {
    current.points.push(point(e));
  }
  redraw();
  predictDrawing();
});
for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => {
    if (!current) return;
    current = null;
    predictDrawing();
  });
}

document.getElementById("clear").addEventListener("click", () => {
  generation++;
  strokes.length = 0;
  redraw();
  pending = null;
  showEmpty();
});
document.getElementById("undo").addEventListener("click", () => {
  generation++;
  strokes.pop();
  redraw();
  if (strokes.length) predictDrawing();
  else showEmpty();
});

function predictDrawing() {
  if (!strokes.length) return;
  const drawing = generation;
  pad.toBlob((blob) => drawing === generation && strokes.length && send(blob), "image/png");
}

function send(body) {
  pending = body;
  schedule();
}

function schedule() {
  markBusy();
  if (timer || inFlight || !pending) return;
  timer = setTimeout(flush, Math.max(0, MIN_INTERVAL_MS - (performance.now() - lastSent)));
  markBusy();
}

// Whether an answer is still on its way: `data-busy` on <body>, for tests and for styles.
function markBusy() {
  document.body.dataset.busy = String(Boolean(inFlight || pending || timer));
}

function flush() {
  timer = null;
  if (!pending || inFlight) return;
  const body = pending;
  pending = null;
  request(body);
}

async function request(body) {
  const drawing = generation;
  inFlight = true;
  markBusy();
  lastSent = performance.now();
  const params = new URLSearchParams({ preprocess: "auto", show_input: "true" });
  if (ui.explain.checked) params.set("explain", "true");
  const [model, version] = ui.model.value.split("@");
  if (model) params.set("model", model);
  if (version) params.set("version", version);
  lastBody = body;
  const headers = { "Content-Type": body.type || "application/octet-stream" };
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) headers.Authorization = `Bearer ${key}`;
  try {
    const response = await fetch(`/predict?${params}`, { method: "POST", headers, body });
    const answer = await response.json().catch(() => ({ error: `the server answered ${response.status}` }));
    if (response.status === 401) askForKey(Boolean(key));
    if (!response.ok) throw new Error(answer.error || `the server answered ${response.status}`);
    ui.keyForm.hidden = true;
    if (drawing === generation) show(answer);
  } catch (error) {
    if (drawing === generation) showError(error.message || String(error));
  } finally {
    inFlight = false;
    schedule();
  }
}

function show(answer) {
  const prediction = answer.predictions[0];
  ui.error.hidden = true;
  ui.digit.textContent = String(prediction.digit);
  ui.confidence.textContent = `${(prediction.probability * 100).toFixed(1)}% probable`;
  showDoubt(prediction);
  prediction.probabilities.forEach((p, d) => {
    const row = ui.bars.children[d];
    row.classList.toggle("top", d === prediction.digit);
    row.querySelector(".bar").style.width = `${Math.max(p * 100, 0.2)}%`;
    row.querySelector(".value").textContent = `${(p * 100).toFixed(1)}%`;
    row.setAttribute("aria-label", `${d}: ${(p * 100).toFixed(1)} percent`);
  });
  ui.seen.src = `data:image/png;base64,${prediction.input_png}`;
  ui.seen.hidden = false;
  showHeatmap(prediction.explanation);
  ui.servedBy.textContent = `answered by ${answer.model} version ${answer.version}`;
  ui.correct.hidden = !feedbackOn;
  ui.thanks.hidden = true;
}

for (let d = 0; d < 10; d++) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = String(d);
  button.setAttribute("aria-label", `That's a ${d}`);
  button.addEventListener("click", () => sendCorrection(d));
  ui.correct.append(button);
}

async function sendCorrection(digit) {
  if (!lastBody) return;
  const headers = { "Content-Type": lastBody.type || "application/octet-stream" };
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) headers.Authorization = `Bearer ${key}`;
  const params = new URLSearchParams({ digit: String(digit), preprocess: "auto" });
  try {
    const response = await fetch(`/feedback?${params}`, { method: "POST", headers, body: lastBody });
    const answer = await response.json().catch(() => ({ error: `the server answered ${response.status}` }));
    if (!response.ok) throw new Error(answer.error || `the server answered ${response.status}`);
    ui.correct.hidden = true;
    ui.thanks.textContent = `Thanks: kept as a ${digit}, for the next model.`;
    ui.thanks.hidden = false;
  } catch (error) {
    showError(error.message || String(error));
  }
}

async function checkFeedback() {
  try {
    const response = await fetch("/feedback");
    feedbackOn = response.ok && (await response.json()).enabled === true;
  } catch {
    feedbackOn = false;
  }
}

// A version that says nothing of its confidence (null) gets no verdict either way.
function showDoubt(prediction) {
  const notADigit = prediction.digit_like === false;
  const unsure = prediction.confident === false;
  ui.doubt.hidden = !notADigit && !unsure;
  ui.doubt.classList.toggle("not-a-digit", notADigit);
  ui.doubt.textContent = notADigit
    ? "That doesn't look like a digit."
    : unsure
      ? "Not sure: check it, or draw it again."
      : "";
  ui.digit.classList.toggle("doubtful", notADigit || unsure);
}

// Each pixel's attribution over the 28x28: red where it made the answer likelier, blue where less.
function showHeatmap(explanation) {
  ui.heatmap.hidden = !explanation;
  if (!explanation) return;
  const paint = ui.heatmap.getContext("2d");
  const image = paint.createImageData(28, 28);
  const scale = Math.max(...explanation.attributions.map(Math.abs)) || 1;
  explanation.attributions.forEach((a, i) => {
    const strength = Math.min(1, Math.abs(a) / scale);
    image.data.set(a >= 0 ? [230, 40, 40] : [40, 90, 240], i * 4);
    image.data[i * 4 + 3] = Math.round(220 * Math.sqrt(strength));
  });
  paint.putImageData(image, 0, 0);
}

function showEmpty() {
  ui.correct.hidden = true;
  ui.thanks.hidden = true;
  ui.digit.textContent = "–";
  ui.confidence.textContent = "";
  ui.doubt.hidden = true;
  ui.digit.classList.remove("doubtful");
  ui.error.hidden = true;
  ui.seen.hidden = true;
  ui.heatmap.hidden = true;
  ui.servedBy.textContent = "";
  for (const row of ui.bars.children) {
    row.classList.remove("top");
    row.querySelector(".bar").style.width = "0";
    row.querySelector(".value").textContent = "0%";
  }
}

function askForKey(rejected) {
  if (rejected) sessionStorage.removeItem(KEY_STORE);
  ui.keyForm.hidden = false;
  ui.key.focus();
}

ui.keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY_STORE, ui.key.value.trim());
  ui.key.value = "";
  ui.keyForm.hidden = true;
  ui.error.hidden = true;
  if (lastBody) send(lastBody);
});

function showError(message) {
  ui.error.textContent = `Could not classify: ${message}`;
  ui.error.hidden = false;
}

function classifyFile(file) {
  if (!file) return;
  generation++;
  pending = null;
  strokes.length = 0;
  redraw();
  request(file);
}

ui.file.addEventListener("change", () => classifyFile(ui.file.files[0]));
document.addEventListener("dragover", (event) => {
  event.preventDefault();
  document.body.classList.add("dragging");
});
document.addEventListener("dragleave", () => document.body.classList.remove("dragging"));
document.addEventListener("drop", (event) => {
  event.preventDefault();
  document.body.classList.remove("dragging");
  classifyFile(event.dataTransfer.files[0]);
});

async function fillModels() {
  try {
    const response = await fetch("/models");
    if (!response.ok) throw new Error(`/models answered ${response.status}`);
    const listing = await response.json();
    for (const [name, versions] of Object.entries(listing.models)) {
      for (const v of versions.filter((v) => v.state === "AVAILABLE")) {
        const option = new Option(`${name} version ${v.version}`, `${name}@${v.version}`);
        ui.model.append(option);
      }
    }
  } catch (error) {
    showError(`the model list could not be read (${error.message})`);
  }
}
ui.model.addEventListener("change", predictDrawing);
ui.explain.addEventListener("change", predictDrawing);
fillModels();
checkFeedback();
