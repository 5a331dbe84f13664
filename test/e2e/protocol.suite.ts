import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LineClient, loggedIn, loggedInOnceFree } from '../helpers/client.js';

// Every rule of PROTOCOL.md as a telnet user meets it, run against a whole deployment.
// Where a deployment has several instances, the two sides of each exchange sit on different ones.

export interface Deployment {
  /** One TCP port per instance. */
  readonly ports: number[];
  stop(): Promise<void>;
}

let unique = 0;
/** A name no other test in this run uses, so tests can share one deployment. */
const fresh = (base: string) => `${base}${++unique}`;

export function protocolSuite(name: string, start: () => Promise<Deployment>): void {
  describe(`protocol 1.1: ${name}`, () => {
    let deployment: Deployment;
    const clients: LineClient[] = [];
    /** The port of instance `index`, modulo the instance count. */
    const portOf = (index: number) => deployment.ports[index % deployment.ports.length]!;
    const connect = async (index = 0) => {
      const client = await LineClient.connect(portOf(index));
      clients.push(client);
      return client;
    };
    const login = async (user: string, index = 0) => {
      const client = await loggedIn(portOf(index), user);
      clients.push(client);
      return client;
    };

    before(async () => { deployment = await start(); });
    after(async () => {
      for (const client of clients) client.destroy();
      await deployment?.stop();
    });

    it('LOGIN and LOGOUT: one name per user, case-insensitive, connection stays after LOGOUT', async () => {
      const name = fresh('Alice');
      const alice = await connect(0);
      const other = await connect(1);
      await alice.command(`LOGIN ${name}`, 'OK');
      await alice.command(`LOGIN ${name}x`, `ERROR ALREADY LOGGED IN AS ${name}`);
      await other.command(`LOGIN ${name.toUpperCase()}`, `ERROR ${name.toUpperCase()} IS ALREADY TAKEN`);
      await alice.command('LOGOUT', 'OK');
      await alice.command('LOGOUT', 'ERROR USER NOT LOGGED IN');
      await other.command(`login ${name.toLowerCase()}`, 'OK');
      await alice.command(`LOGIN ${name}`, `ERROR ${name} IS ALREADY TAKEN`);
      await alice.command(`LOGIN ${name}-2`, 'OK');
    });

    it('checks names before login state, and login state before everything else', async () => {
      const client = await connect();
      await client.command('LOGIN not/valid', 'ERROR INVALID USERNAME');
      await client.command(`LOGIN ${'x'.repeat(33)}`, 'ERROR INVALID USERNAME');
      await client.command('JOIN lobby', 'ERROR INVALID ROOM');
      await client.command('JOIN #lobby', 'ERROR USER NOT LOGGED IN');
      await client.command('PART #lobby', 'ERROR USER NOT LOGGED IN');
      await client.command('MSG #lobby hi', 'ERROR USER NOT LOGGED IN');
      await client.command('MSG bob hi', 'ERROR USER NOT LOGGED IN');
      await client.command('MSG b!b hi', 'ERROR INVALID USERNAME');
      await client.command('MSG #b!b hi', 'ERROR INVALID ROOM');
      await client.command('LOGOUT', 'ERROR USER NOT LOGGED IN');
    });

    it('answers INVALID COMMAND to unknown keywords and wrong argument counts', async () => {
      const client = await login(fresh('cmd'));
      for (const line of ['LOGINX a', 'LIST', 'JOIN', 'JOIN #a #b', 'PART', 'MSG', 'MSG bob', 'MSG #room   ', 'LOGOUT now',
        'QUIT now', 'HELP me', 'ROOMS all', 'WHO', 'WHO #a #b']) {
        await client.command(line, 'ERROR INVALID COMMAND');
      }
    });

    it('JOIN and PART: errors echo the room as typed; an emptied room forgets its spelling', async () => {
      const room = fresh('#Lobby');
      const meName = fresh('Jo');
      const me = await login(meName, 0);
      const friend = await login(fresh('friend'), 1);
      await me.command(`JOIN ${room}`, 'OK');
      await me.command(`JOIN ${room.toUpperCase()}`, `ERROR ${meName} ALREADY JOINED ${room.toUpperCase()}`);
      await me.command(`PART ${room.toLowerCase()}`, 'OK');
      await me.command(`PART ${room}`, `ERROR ${meName} NOT IN ${room}`);
      await friend.command(`JOIN ${room.toUpperCase()}`, 'OK');
      await me.command(`JOIN ${room}`, 'OK');
      await me.command(`MSG ${room} who named this?`, 'OK', `GOTROOMMSG ${meName} ${room.toUpperCase()} who named this?`);
      await friend.expect(`GOTROOMMSG ${meName} ${room.toUpperCase()} who named this?`);
    });

    it('MSG to a room: OK, then the sender\'s own copy; every member gets it, text byte for byte', async () => {
      const room = fresh('#tea');
      const [aName, bName, cName] = [fresh('Ann'), fresh('Ben'), fresh('Cat')];
      const ann = await login(aName, 0);
      const ben = await login(bName, 1);
      const cat = await login(cName, 1);
      await ann.command(`JOIN ${room}`, 'OK');
      await ben.command(`JOIN ${room}`, 'OK');
      const text = 'Hello,   World!\t ünïcødé ✓ ';
      await ann.command(`MSG ${room} ${text}`, 'OK', `GOTROOMMSG ${aName} ${room} ${text}`);
      await ben.expect(`GOTROOMMSG ${aName} ${room} ${text}`);
      await cat.command(`MSG ${room} let me in`, `ERROR ROOM ${room} NOT AVAILABLE`);
      const nowhere = fresh('#Nowhere');
      await cat.command(`MSG ${nowhere} hi`, `ERROR ROOM ${nowhere} NOT AVAILABLE`);
      await ann.expectSilence(100);
    });

    it('MSG to a user: across instances, to oneself, and NOT FOUND as typed', async () => {
      const [aName, bName] = [fresh('Ada'), fresh('Bob')];
      const ada = await login(aName, 0);
      const bob = await login(bName, 1);
      await ada.command(`MSG ${bName.toUpperCase()} psst  secret`, 'OK');
      await bob.expect(`GOTUSERMSG ${aName} psst  secret`);
      await ada.command(`MSG ${aName.toLowerCase()} note to self`, 'OK', `GOTUSERMSG ${aName} note to self`);
      await ada.command('MSG Nobody-Here hi', 'ERROR Nobody-Here NOT FOUND');
      await bob.command('LOGOUT', 'OK');
      await ada.command(`MSG ${bName} still there?`, `ERROR ${bName} NOT FOUND`);
    });

    it('closing the connection logs out: the name is free and the rooms forget the user', async () => {
      const room = fresh('#Den');
      const name = fresh('Gus');
      const gus = await login(name, 0);
      await gus.command(`JOIN ${room}`, 'OK');
      await gus.close();
      const next = await loggedInOnceFree(portOf(1), name.toLowerCase());
      clients.push(next);
      // The room emptied when Gus left, so it no longer exists under his spelling.
      await next.command(`MSG ${room} hello?`, `ERROR ROOM ${room} NOT AVAILABLE`);
      await next.command(`JOIN ${room.toUpperCase()}`, 'OK');
      await next.command(`MSG ${room} mine`, 'OK', `GOTROOMMSG ${name.toLowerCase()} ${room.toUpperCase()} mine`);
    });

    it('frames lines: LF or CRLF, blank lines ignored, long lines refused once, bad bytes refused', async () => {
      const client = await connect();
      client.sendRaw('\r\n   \n\t\nLOGIN ' + fresh('frames') + '\r\n');
      await client.expect('OK');
      client.sendRaw(`MSG nobody ${'x'.repeat(2000)}\nLOGOUT\n`);
      await client.expect('ERROR LINE TOO LONG', 'OK');
      client.sendRaw(Buffer.concat([Buffer.from('LOGIN b'), Buffer.from([0xff, 0xfe]), Buffer.from('\n')]));
      await client.expect('ERROR INVALID ENCODING');
      client.sendRaw('LOGIN \x1b[31mred\nLOGIN a\rb\n');
      await client.expect('ERROR INVALID CHARACTERS', 'ERROR INVALID CHARACTERS');
      // 1.1: the C1 controls (here the one-byte CSI) and the Unicode line separators too.
      client.sendRaw('MSG nobody \u009b31mred\nMSG nobody a\u2028b\nMSG nobody a\u2029b\n');
      await client.expect('ERROR INVALID CHARACTERS', 'ERROR INVALID CHARACTERS', 'ERROR INVALID CHARACTERS');
      await client.expectSilence(100);
    });

    it('answers pipelined commands in order', async () => {
      const client = await connect(1);
      const name = fresh('pipe');
      const room = fresh('#pipe');
      client.send(`LOGIN ${name}`, `JOIN ${room}`, `MSG ${room} one`, 'NOPE', `MSG ${name} two`, `PART ${room}`,
        `MSG ${room} three`, 'LOGOUT', `MSG ${name} four`);
      await client.expect('OK', 'OK', 'OK', `GOTROOMMSG ${name} ${room} one`, 'ERROR INVALID COMMAND',
        'OK', `GOTUSERMSG ${name} two`, 'OK', `ERROR ROOM ${room} NOT AVAILABLE`, 'OK', 'ERROR USER NOT LOGGED IN');
    });

    it('PING answers PONG with the token as sent, before and after LOGIN', async () => {
      const client = await connect();
      await client.command('PING', 'PONG');
      await client.command('ping  a  b ', 'PONG a  b ');
      await client.command(`LOGIN ${fresh('pinger')}`, 'OK');
      await client.command('PING 42', 'PONG 42');
    });

    it('HELP lists every command, each line starting HELP, then OK, before LOGIN', async () => {
      const client = await connect();
      client.send('HELP');
      const lines: string[] = [];
      for (let line = await client.nextLine(); line !== 'OK'; line = await client.nextLine()) lines.push(line);
      assert.ok(lines.length > 0 && lines.every((line) => line.startsWith('HELP ')), lines.join('\n'));
      for (const keyword of ['LOGIN', 'LOGOUT', 'JOIN', 'PART', 'MSG', 'WHO', 'ROOMS', 'PING', 'HELP', 'QUIT']) {
        assert.ok(lines.some((line) => line.startsWith(`HELP ${keyword}`)), `HELP has no line for ${keyword}`);
      }
    });

    it('QUIT answers OK, closes the connection and frees the name', async () => {
      const stranger = await connect(0);
      await stranger.command('QUIT', 'OK');
      await stranger.closed;
      const name = fresh('Quitter');
      const quitter = await login(name, 0);
      quitter.send('QUIT', `MSG ${name} never sent`);
      await quitter.expect('OK');
      await quitter.closed;
      clients.push(await loggedInOnceFree(portOf(1), name));
    });

    it('WHO lists every member once, sorted case-insensitively, in lines of at most 1024 bytes', async () => {
      const room = fresh('#Who');
      const first = await connect(0);
      await first.command('WHO #x', 'ERROR USER NOT LOGGED IN');
      // 32 characters each (the longest name): forty of them cannot fit one line.
      const tag = String(++unique).padStart(5, '0');
      const names = Array.from({ length: 40 }, (_, i) => `${i % 2 ? 'b' : 'A'}${String(i).padStart(2, '0')}${'x'.repeat(24)}${tag}`);
      const members = [];
      for (const [i, name] of names.entries()) {
        const member = await login(name, i);
        await member.command(`JOIN ${i === 0 ? room : room.toLowerCase()}`, 'OK');
        members.push(member);
      }
      const asker = await login(fresh('asker'), 1);
      await asker.command('WHO #bad!', 'ERROR INVALID ROOM');
      const nowhere = fresh('#Nowhere');
      await asker.command(`WHO ${nowhere}`, `ERROR ROOM ${nowhere} NOT AVAILABLE`);
      asker.send(`WHO ${room.toUpperCase()}`);
      const lines: string[] = [];
      for (let line = await asker.nextLine(); line !== 'OK'; line = await asker.nextLine()) lines.push(line);
      assert.ok(lines.length >= 2, 'forty long names need more than one line');
      for (const line of lines) {
        assert.ok(line.startsWith(`MEMBERS ${room} `), line);
        assert.ok(Buffer.byteLength(line) <= 1024, `${Buffer.byteLength(line)} bytes`);
      }
      const listed = lines.flatMap((line) => line.split(' ').slice(2));
      assert.deepEqual(listed, [...names].sort((x, y) => x.toLowerCase().localeCompare(y.toLowerCase())));
    });

    it('ROOMS lists every room with its member count, sorted case-insensitively', async () => {
      const [big, small] = [fresh('#zBig'), fresh('#aSmall')];
      const one = await login(fresh('roomer'), 0);
      const two = await login(fresh('roomer'), 1);
      await one.command('ROOMS x', 'ERROR INVALID COMMAND');
      await one.command(`JOIN ${big}`, 'OK');
      await two.command(`JOIN ${big.toLowerCase()}`, 'OK');
      await two.command(`JOIN ${small}`, 'OK');
      two.send('ROOMS');
      const lines: string[] = [];
      for (let line = await two.nextLine(); line !== 'OK'; line = await two.nextLine()) lines.push(line);
      assert.ok(lines.every((line) => /^ROOM #\S+ \d+$/.test(line)), lines.join('\n'));
      assert.ok(lines.includes(`ROOM ${big} 2`), lines.join('\n'));
      assert.ok(lines.includes(`ROOM ${small} 1`), lines.join('\n'));
      const rooms = lines.map((line) => line.split(' ')[1]!.toLowerCase());
      assert.deepEqual(rooms, [...rooms].sort());
      const stranger = await connect(1);
      await stranger.command('ROOMS', 'ERROR USER NOT LOGGED IN');
    });

    it('runs what a client sent before hanging up, then logs it out', async () => {
      const bobName = fresh('bob');
      const bob = await login(bobName, 1);
      const quick = await connect(0);
      const quickName = fresh('quick');
      quick.send(`LOGIN ${quickName}`, `MSG ${bobName} sent and gone`);
      quick.socket.end();
      await bob.expect(`GOTUSERMSG ${quickName} sent and gone`);
      await quick.closed;
      clients.push(await loggedInOnceFree(portOf(1), quickName));
    });
  });
}
