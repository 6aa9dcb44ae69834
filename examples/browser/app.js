// The browser example: the prebuilt bundle (npm run build makes it; an installed package has it
// at node_modules/nimbus-mqtt-client/dist/browser/nimbus-mqtt.js) and a few lines of MQTT.js.
import { connect } from '../../packages/client/dist/browser/nimbus-mqtt.js';

const settings = document.querySelector('#settings');
const status = document.querySelector('#status');
const messages = document.querySelector('#messages');
const publishForm = document.querySelector('#publish');
const clientId = `browser-${Math.random().toString(16).slice(2, 10)}`;
let client;

function show(state, text) {
  status.dataset.state = state;
  status.textContent = text;
}

function start(url) {
  client?.end(true);
  show('connecting', `Connecting to ${url}…`);
  client = connect(url, { clientId, protocolVersion: 5 });
  client.on('connect', async () => {
    show('connected', `Connected to ${url} as ${clientId}.`);
    await client.subscribeAsync('nimbus/browser/#', { qos: 1 });
    await client.publishAsync(`nimbus/browser/${clientId}`, `hello from ${clientId}`, { qos: 1 });
  });
  client.on('message', (topic, payload) => {
    const item = document.createElement('li');
    item.textContent = `${topic}: ${payload.toString()}`;
    messages.append(item);
  });
  client.on('reconnect', () => show('connecting', `Reconnecting to ${url}…`));
  client.on('error', (error) => show('error', `${error.message} (is the emulator running? npm start)`));
}

// ?url=wss://… picks the broker; the default is the emulator that `npm start` runs.
settings.url.value = new URLSearchParams(location.search).get('url') ?? 'ws://127.0.0.1:1884';
settings.addEventListener('submit', (event) => {
  event.preventDefault();
  start(settings.url.value);
});
publishForm.addEventListener('submit', (event) => {
  event.preventDefault();
  client?.publish(`nimbus/browser/${clientId}`, publishForm.text.value, { qos: 1 });
  publishForm.reset();
});
start(settings.url.value);
