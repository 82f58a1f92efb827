//! A scripted MQTT server (a real TLS server speaking MQTT 3.1.1 through rumqttc's codec) for the
//! misbehaviour tests of DPS and IoT Hub: it accepts CONNECT and SUBSCRIBE, acknowledges QoS 1
//! publishes, records every publish, and answers each with what the script returns.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{ConnAck, ConnectReturnCode, Packet, PubAck, Publish, SubAck, SubscribeReasonCode};

/// What the script does with the n-th publish (counted over all connections, from 0).
pub enum Answer {
    /// Publish these (topic, payload) at QoS 0.
    Send(Vec<(String, Vec<u8>)>),
    /// Close the connection.
    Close,
    /// Publish these (topic, payload) at QoS 0, then close the connection at once (the answer and the
    /// end of the connection reach the client together).
    SendThenClose(Vec<(String, Vec<u8>)>),
}

/// A publish the server received.
#[derive(Debug, Clone)]
pub struct Received {
    pub topic: String,
    pub qos: QoS,
    pub payload: Vec<u8>,
}

pub type Script = Arc<dyn Fn(&Received, usize) -> Answer + Send + Sync>;

pub struct MqttServer {
    pub endpoint: String,
    pub ca_pem: String,
    pub received: Arc<Mutex<Vec<Received>>>,
    /// DISCONNECT packets received, and the condition signalled on each.
    disconnects: Arc<(Mutex<usize>, Condvar)>,
}

/// The `$rid` of a request topic.
pub fn rid(topic: &str) -> String {
    topic
        .split("$rid=")
        .nth(1)
        .unwrap_or("0")
        .split('&')
        .next()
        .unwrap_or("0")
        .to_string()
}

fn read_packet<R: Read>(stream: &mut R, buf: &mut BytesMut) -> Option<Packet> {
    loop {
        match Packet::read(buf, 1 << 20) {
            Ok(p) => return Some(p),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(_) => return None,
        }
    }
}

fn write_packet<W: Write>(stream: &mut W, packet: Packet) {
    let mut out = BytesMut::new();
    packet.write(&mut out, usize::MAX).unwrap();
    let _ = stream.write_all(&out).and_then(|()| stream.flush());
}

impl MqttServer {
    /// Starts the server. With `garbage_at_connect` it answers CONNECT with bytes that are no MQTT.
    pub fn start(garbage_at_connect: bool, script: Script) -> MqttServer {
        let (config, ca_pem) = super::loopback_server_config();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = listener.local_addr().unwrap().to_string();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let disconnects = Arc::new((Mutex::new(0usize), Condvar::new()));
        let seen = disconnects.clone();
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { return };
                let (config, script, log, seen) = (config.clone(), script.clone(), log.clone(), seen.clone());
                std::thread::spawn(move || {
                    let conn = rustls::ServerConnection::new(config).unwrap();
                    let mut s = rustls::StreamOwned::new(conn, tcp);
                    let mut buf = BytesMut::new();
                    while let Some(packet) = read_packet(&mut s, &mut buf) {
                        match packet {
                            Packet::Connect(_) if garbage_at_connect => {
                                let _ = s.write_all(b"\xff\xfe not MQTT at all \x1b[2J");
                                let _ = s.flush();
                            }
                            Packet::Connect(_) => {
                                write_packet(&mut s, Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, false)))
                            }
                            Packet::Subscribe(sub) => {
                                let codes = sub
                                    .filters
                                    .iter()
                                    .map(|_| SubscribeReasonCode::Success(QoS::AtLeastOnce))
                                    .collect();
                                write_packet(&mut s, Packet::SubAck(SubAck::new(sub.pkid, codes)));
                            }
                            Packet::Publish(p) => {
                                if p.qos == QoS::AtLeastOnce {
                                    write_packet(&mut s, Packet::PubAck(PubAck::new(p.pkid)));
                                }
                                let r = Received {
                                    topic: p.topic.clone(),
                                    qos: p.qos,
                                    payload: p.payload.to_vec(),
                                };
                                let n = {
                                    let mut log = log.lock().unwrap();
                                    log.push(r.clone());
                                    log.len() - 1
                                };
                                let (messages, close) = match script(&r, n) {
                                    Answer::Close => return,
                                    Answer::Send(messages) => (messages, false),
                                    Answer::SendThenClose(messages) => (messages, true),
                                };
                                let mut out = BytesMut::new();
                                for (topic, payload) in messages {
                                    Packet::Publish(Publish::new(topic, QoS::AtMostOnce, payload))
                                        .write(&mut out, usize::MAX)
                                        .unwrap();
                                }
                                if close {
                                    // One TLS write and the close together: the client reads both at once.
                                    let _ = s.write_all(&out);
                                    s.conn.send_close_notify();
                                    let _ = s.flush();
                                    return;
                                }
                                let _ = s.write_all(&out).and_then(|()| s.flush());
                            }
                            Packet::PingReq => write_packet(&mut s, Packet::PingResp),
                            Packet::Disconnect => {
                                *seen.0.lock().unwrap() += 1;
                                seen.1.notify_all();
                            }
                            _ => {}
                        }
                    }
                });
            }
        });
        MqttServer {
            endpoint,
            ca_pem,
            received,
            disconnects,
        }
    }

    /// Waits until a client has sent DISCONNECT, at most `within`; whether one did.
    pub fn wait_for_disconnect(&self, within: Duration) -> bool {
        let (count, signal) = &*self.disconnects;
        let (count, _) = signal
            .wait_timeout_while(count.lock().unwrap(), within, |n| *n == 0)
            .unwrap();
        *count > 0
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}
