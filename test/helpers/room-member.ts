import { connect, type Socket } from 'node:net';

// A bare chat client for big rooms, thousands at a time: logs in, joins one room, and keeps the
// numbers that end the room messages it gets (the last word of each GOTROOMMSG).

export class RoomMember {
  readonly numbers: number[] = [];
  private buffer = '';
  private constructor(readonly socket: Socket) {}

  static async join(port: number, name: string, room: string): Promise<RoomMember> {
    const socket = connect({ port, host: '127.0.0.1' });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const member = new RoomMember(socket);
    socket.setEncoding('utf8');
    let oks = 0;
    const joined = new Promise<void>((resolve, reject) => {
      socket.on('data', (text: string) => {
        member.buffer += text;
        let end;
        while ((end = member.buffer.indexOf('\r\n')) !== -1) {
          const line = member.buffer.slice(0, end);
          member.buffer = member.buffer.slice(end + 2);
          if (line === 'OK' && ++oks === 2) resolve();
          else if (line.startsWith('ERROR')) reject(new Error(`${name}: ${line}`));
          else if (line.startsWith('GOTROOMMSG')) member.numbers.push(Number(line.slice(line.lastIndexOf(' ') + 1)));
        }
      });
    });
    socket.write(`LOGIN ${name}\nJOIN ${room}\n`);
    await joined;
    return member;
  }
}

