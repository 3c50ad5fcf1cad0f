"""The mobile console's two pages: phone-sized HTML with inline CSS and JavaScript, nothing else.

``/`` (:func:`console_page`) shows the service's status live (server-sent events from
``/api/events``) and the admin actions (``POST /api/action``), asking before a reboot or a
head is stopped; ``/pair`` (:func:`pair_page`) pairs the phone with the code from its URL
(``POST /api/pair``). Both load nothing from anywhere: their script and style carry the
response's CSP nonce. The pages hold no secrets and no data: whoever opens one unpaired sees
"not paired" (what the API answers decides). Every value is put in with ``textContent``,
never as HTML. Every request that changes something carries the ``X-Polycephaly-Console``
header (the CSRF check). Pure functions: safe from any thread.
"""

from __future__ import annotations

#: The header every state-changing request must carry (a cross-site form cannot set it).
CSRF_HEADER = 'X-Polycephaly-Console'

_CSS = """
*{box-sizing:border-box}
body{margin:0;font:17px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
 background:#f2f4f7;color:#111}
header{background:#1d3557;color:#fff;padding:14px 16px}
header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;font-size:15px;color:#dde6f3}
main{padding:10px}
section{background:#fff;border-radius:12px;padding:12px 14px;margin:0 0 10px;
 box-shadow:0 1px 3px rgba(0,0,0,.12)}
h2{margin:0 0 8px;font-size:19px}
dl{display:grid;grid-template-columns:auto 1fr;gap:4px 12px;margin:0}
dt{font-weight:600;color:#444}dd{margin:0}
ul{list-style:none;margin:0;padding:0}
li{padding:8px 0;border-top:1px solid #e4e7ec}li:first-child{border-top:0}
.row{display:flex;justify-content:space-between;align-items:center;gap:8px;flex-wrap:wrap}
.small{font-size:14px;color:#555}
.ok{color:#137333}.bad{color:#b3261e}.busy{color:#8a5a00}
button{font:inherit;font-size:15px;padding:8px 12px;border-radius:8px;border:1px solid #1d3557;
 background:#fff;color:#1d3557;margin:2px}
button.main{background:#1d3557;color:#fff;width:100%;padding:12px;font-size:18px}
button.danger{border-color:#b3261e;color:#b3261e}
button:disabled{opacity:.4}
input{font:inherit;width:100%;padding:10px;border:1px solid #999;border-radius:8px;
 margin:4px 0 12px}
#code{font-family:ui-monospace,monospace;font-size:24px;letter-spacing:2px;
 text-transform:uppercase}
#result,#message{font-weight:600}
.modal{position:fixed;inset:0;background:rgba(0,0,0,.45);display:flex;align-items:center;
 justify-content:center;padding:20px}
.modal[hidden]{display:none}
.modal div{background:#fff;border-radius:12px;padding:16px;max-width:360px}
"""

_HEAD = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer"><link rel="icon" href="data:,">
<title>TITLE</title><style nonce="NONCE">""" + _CSS + "</style></head>"

_COMMON_JS = """
const H={'Content-Type':'application/json','""" + CSRF_HEADER + """':'1'};
const $=id=>document.getElementById(id);
function el(tag,text,cls){const e=document.createElement(tag);if(text!==undefined)
 e.textContent=text;if(cls)e.className=cls;return e;}
async function answer(r){try{return await r.json();}catch(e){
 return {error:'unexpected answer from the robot (HTTP '+r.status+')'};}}
"""

_CONSOLE_BODY = """<body><header><h1>Robot console</h1><p id="who">connecting…</p></header><main>
<section id="unpaired" hidden><h2>Not paired</h2><p id="unpaired-why" class="bad"></p>
<p class="small">On the robot's touchscreen open Pair and scan the QR code with this phone.</p>
</section>
<div id="console" hidden>
<section><h2>Robot status</h2><p class="small" id="live">connecting…</p><dl>
<dt>Host</dt><dd id="host">?</dd>
<dt>Service</dt><dd>pid <span id="pid">?</span>, up <span id="uptime">?</span></dd>
<dt>Link</dt><dd id="link">?</dd><dt>Health</dt><dd id="health">?</dd>
<dt>Updates</dt><dd id="updates">?</dd></dl></section>
<section><h2>Actions</h2><p id="result" role="status">No action yet.</p>
<div class="row"><span>Robot is</span><span><button id="idle">idle</button>
<button id="busy">busy</button></span></div><ul id="actions"></ul></section>
<section><h2>Heads</h2><ul id="heads"></ul></section>
</div></main>
<div id="confirm" class="modal" hidden><div><p id="confirm-text"></p>
<button id="confirm-yes" class="danger"></button> <button id="confirm-no">Cancel</button>
</div></div>"""

_CONSOLE_JS = """
const CONSOLE_HEAD=CONSOLE_NAME;let es=null,device=null,rows={},acts={};
function span(s){s=Math.floor(s);if(s<60)return s+' s';if(s<3600)
 return Math.floor(s/60)+' min '+(s%60)+' s';return Math.floor(s/3600)+' h '+
 Math.floor(s%3600/60)+' min';}
function pct(v){return typeof v==='number'?Math.round(v)+' %':'?';}
function unpaired(why){if(es){es.close();es=null;}$('console').hidden=true;
 $('unpaired').hidden=false;$('unpaired-why').textContent=why;$('who').textContent='not paired';}
function result(text,cls){const r=$('result');r.textContent=text;r.className=cls||'';}
function ask(text,yes,then){$('confirm-text').textContent=text;$('confirm-yes').textContent=yes;
 $('confirm').hidden=false;$('confirm-yes').onclick=()=>{$('confirm').hidden=true;then();};
 $('confirm-no').onclick=()=>{$('confirm').hidden=true;result('Cancelled.');};}
async function act(subject,body,label){result(label+'…','busy');try{
 const r=await fetch('/api/action',{method:'POST',headers:H,body:JSON.stringify({subject,body})});
 const j=await answer(r);if(r.status===401)return unpaired(j.error);
 result(j.text||j.error,j.ok?'ok':'bad');}catch(e){result('No answer from the robot.','bad');}}
function headRow(h){let row=rows[h.name];if(!row){row=el('li');const top=el('div','','row');
 row.info=el('span');top.append(row.info);const b=el('span');
 if(h.name!==CONSOLE_HEAD){for(const verb of ['start','stop','restart']){
  const btn=el('button',verb,verb==='start'?'':'danger');btn.id=verb+'-'+h.name;
  btn.onclick=()=>{const go=()=>act(verb+'_head',{head:h.name},verb+' '+h.name);
   if(verb==='start')go();else ask(verb[0].toUpperCase()+verb.slice(1)+' head '+h.name+
   '? What it does stops until it runs again.',verb+' '+h.name,go);};b.append(btn);
  row[verb]=btn;}}else b.append(el('span','this console','small'));
 top.append(b);row.append(top);rows[h.name]=row;$('heads').append(row);}
 row.info.textContent=h.name+': '+h.state+(h.exits?' ('+h.exits+' exits)':'');
 row.info.className=h.state==='running'?'ok':'bad';
 if(row.start){row.start.disabled=h.state==='running';row.stop.disabled=h.state!=='running';}}
function actionRow(name,a,pending){let row=acts[name];if(!row){row=el('li');
 row.info=el('div');const b=el('div');const risky=/reboot|shutdown|power/i.test(
 name+' '+a.description);const s=el('button','schedule',risky?'danger':'');
 s.id='schedule-'+name;const go=()=>act('schedule',{action:name},'schedule '+name);
 s.onclick=()=>risky?ask('Schedule '+name+' ('+a.description+
 ')? It runs in the downtime window when the robot is idle.','schedule '+name,go):go();
 const u=el('button','unschedule');u.id='unschedule-'+name;
 u.onclick=()=>act('unschedule',{action:name},'unschedule '+name);b.append(s,u);
 row.append(row.info,b);acts[name]=row;$('actions').append(row);}
 row.info.textContent=name+(pending?' (scheduled)':'')+': '+a.description;}
function render(s){$('host').textContent=s.host+(s.namespace?' '+s.namespace:'');
 $('pid').textContent=s.pid;$('uptime').textContent=span(s.uptime);
 const l=s.link;$('link').textContent=l?(l.up?'up':'DOWN')+(l.reason?' ('+l.reason+')':''):
 'unknown';$('link').className=l?(l.up?'ok':'bad'):'';const d=s.diagnostics;
 $('health').textContent=d?d.level+' · CPU '+pct(d.cpu)+' · memory '+pct(d.memory)+
 Object.entries(d.disks||{}).map(([p,v])=>' · disk '+p+' '+pct(v)).join(''):'no sample yet';
 $('health').className=d?(d.level==='OK'?'ok':'bad'):'';const u=s.updates;
 $('updates').textContent=u?(u.dry_run?'dry run':'LIVE')+' · window '+u.window+
 (u.in_window?', open now':', closed now')+' · robot '+(u.idle?'idle':'busy')+' · '+
 (u.pending.length?'scheduled: '+u.pending.join(', '):'nothing scheduled'):'unknown';
 for(const h of s.heads||[])headRow(h);
 if(u)for(const [n,a] of Object.entries(u.actions||{}))actionRow(n,a,u.pending.includes(n));
 $('live').textContent='live · updated '+new Date(s.time*1000).toLocaleTimeString();
 $('live').className='small ok';}
function connect(){es=new EventSource('/api/events');
 es.addEventListener('status',e=>render(JSON.parse(e.data)));
 es.addEventListener('problem',e=>{$('live').textContent=JSON.parse(e.data).error;
  $('live').className='small bad';});
 es.addEventListener('revoked',e=>unpaired(JSON.parse(e.data).error));
 es.onerror=()=>{if(!es)return;$('live').textContent='connection lost, reconnecting…';
  $('live').className='small bad';if(es.readyState===EventSource.CLOSED){es=null;
  setTimeout(start,2000);}};}
async function start(){let r;try{r=await fetch('/api/status');}catch(e){
 $('who').textContent='the robot does not answer; retrying…';setTimeout(start,3000);return;}
 const j=await answer(r);if(r.status===401)return unpaired(j.error);
 if(!r.ok){$('who').textContent=j.error;setTimeout(start,3000);return;}device=j.device;
 $('who').textContent='Paired as '+device.name+' since '+
 new Date(device.paired*1000).toLocaleString();$('unpaired').hidden=true;
 $('console').hidden=false;render(j.status);if(!es)connect();}
$('idle').onclick=()=>act('robot_idle',{idle:true},'report idle');
$('busy').onclick=()=>act('robot_idle',{idle:false},'report busy');
start();
"""

_PAIR_BODY = """<body><header><h1>Pair this phone</h1><p>with the robot in front of you</p>
</header><main><section><form id="form"><label for="code">Code shown on the robot's screen
</label><input id="code" autocomplete="off" autocapitalize="characters" maxlength="16"
spellcheck="false"><label for="name">Name of this phone</label>
<input id="name" maxlength="40" autocomplete="off">
<button id="pair" class="main" type="submit">Pair this phone</button></form>
<p id="message" role="status"></p></section><section><h2>What pairing allows</h2>
<p class="small">This phone will see the robot's status and run its admin actions until it
is unpaired on the robot. A code works once, for a few minutes.</p></section></main>"""

_PAIR_JS = """
const q=new URLSearchParams(location.search);$('code').value=q.get('code')||'';
history.replaceState(null,'','/pair');
const ua=navigator.userAgent;$('name').value=/iPhone/.test(ua)?'iPhone':/iPad/.test(ua)?
 'iPad':/Android/.test(ua)?'Android phone':'phone';
$('form').onsubmit=async e=>{e.preventDefault();const m=$('message');$('pair').disabled=true;
 m.textContent='Pairing…';m.className='busy';try{const r=await fetch('/api/pair',{method:'POST',
 headers:H,body:JSON.stringify({code:$('code').value,name:$('name').value})});
 const j=await answer(r);if(r.ok){m.textContent='Paired as '+j.device.name+
 '. Opening the console…';m.className='ok';location.replace('/');return;}
 m.textContent=j.error;m.className='bad';}catch(err){
 m.textContent='No answer from the robot.';m.className='bad';}$('pair').disabled=false;};
"""


def _page(title: str, body: str, script: str, nonce: str) -> str:
    head = _HEAD.replace('TITLE', title).replace('NONCE', nonce)
    return f'{head}{body}<script nonce="{nonce}">{_COMMON_JS}{script}</script></body></html>'


def console_page(nonce: str, console_head: str) -> str:
    """Return the console's page (status, actions, heads) with the given CSP nonce."""
    import json

    script = _CONSOLE_JS.replace('CONSOLE_NAME', json.dumps(console_head))
    return _page('Robot console', _CONSOLE_BODY, script, nonce)


def pair_page(nonce: str) -> str:
    """Return the "Pair this phone" page with the given CSP nonce (the code comes from its URL)."""
    return _page('Pair this phone', _PAIR_BODY, _PAIR_JS, nonce)
